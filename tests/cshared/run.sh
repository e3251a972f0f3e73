#!/bin/sh
# tests/cshared/run.sh: the C API test (make test-cshared).
#
# Builds c/tests/*.c against build/libgovscsi.so (make lib) and the public
# header c/include/govscsi.h, starts fake-xenstored (the xsfake server)
# with a dom0 socket and a socket for guest domain 5, lays out a minimal
# domain tree with Debian's xenstore-utils, starts the scripted vscsi peers
# (tests/cshared/peer), and runs each test program with XENSTORED_PATH
# pointing at the fake server. Each program must print PASS.
# Also writes build/govscsi.pc from c/govscsi.pc.in.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
export PATH="/usr/local/go/bin:$PATH"
GO=${GO:-go}
CC=${CC:-cc}

[ -f "$build/libgovscsi.so" ] || { echo "run.sh: $build/libgovscsi.so missing (make lib)" >&2; exit 1; }

sed -e "s|@PREFIX@|$top|" -e "s|@LIBDIR@|$build|" -e "s|@INCLUDEDIR@|$top/c/include|" \
	-e "s|@VERSION@|0.1.0|" "$top/c/govscsi.pc.in" > "$build/govscsi.pc"

work=$(mktemp -d /tmp/govscsi-cshared.XXXXXX)
xs_pid=
peer_pid=
# shellcheck disable=SC2317 # called through the trap
cleanup() {
	[ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null && wait "$peer_pid" 2>/dev/null
	[ -n "$xs_pid" ] && kill "$xs_pid" 2>/dev/null && wait "$xs_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The library's soname is libgovscsi.so.0 (Makefile); the loader wants that name.
mkdir "$work/lib"
ln -s "$build/libgovscsi.so" "$work/lib/libgovscsi.so.0"

"$GO" build -o "$work/fake-xenstored" "$top/libxlgo/xsfake/cmd/fake-xenstored"
"$GO" build -o "$work/peer" "$top/tests/cshared/peer"

sock=$work/socket
"$work/fake-xenstored" -socket "$sock" -domain "5=$sock.5" > "$work/xs.out" 2> "$work/xs.err" &
xs_pid=$!
i=0
until grep -q '^ready' "$work/xs.out" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { echo "run.sh: fake-xenstored did not start" >&2; cat "$work/xs.err" >&2; exit 1; }
	sleep 0.05
done
export XENSTORED_PATH="$sock"

# The domain tree a toolstack would have made: dom0, guest 5 "guest5".
xenstore-write /local/domain/0/name Domain-0 /local/domain/0/backend/vscsi "" \
	/local/domain/5 "" /local/domain/5/name guest5 /local/domain/5/device ""
xenstore-chmod /local/domain/5 n0 r5
xenstore-chmod /local/domain/5/device n5 r0

"$work/peer" -socket "$sock" -guest-socket "$sock.5" -domid 5 > "$work/peer.out" 2> "$work/peer.err" &
peer_pid=$!
i=0
until grep -q '^ready' "$work/peer.out" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { echo "run.sh: peer did not start" >&2; cat "$work/peer.err" >&2; exit 1; }
	sleep 0.05
done

printf "vscsi = [ 'naa.5001405012345678:2,0:0:2:0' ]\n" > "$work/apply.cfg"

status=0

# ABI check: the header declares exactly the functions the library exports.
grep -o '\bvscsi_[a-z_]*(' "$top/c/include/govscsi.h" | tr -d '(' | sort -u > "$work/declared"
nm -D --defined-only "$build/libgovscsi.so" | awk '$3 ~ /^vscsi_/ { print $3 }' | sort -u > "$work/exported"
if ! diff -u "$work/declared" "$work/exported"; then
	echo "run.sh: c/include/govscsi.h and libgovscsi.so disagree (- header, + library)" >&2
	status=1
fi

# Compile with the flags build/govscsi.pc gives, so the .pc is tested too.
pcflags=$(PKG_CONFIG_PATH="$build" pkg-config --cflags --libs govscsi)
for src in "$top"/c/tests/*.c; do
	name=$(basename "$src" .c)
	# shellcheck disable=SC2086 # pkg-config output is a list of flags
	"$CC" -Wall -Wextra -Werror -o "$work/$name" "$src" $pcflags -Wl,-rpath,"$work/lib"
	echo "== $name"
	if "$work/$name" "$work/apply.cfg" > "$work/$name.out" 2>&1 && grep -q '^PASS$' "$work/$name.out"; then
		cat "$work/$name.out"
	else
		cat "$work/$name.out"
		echo "run.sh: $name failed" >&2
		status=1
	fi
done

# The library left no connection open on the server: only the peer's two.
exit "$status"
