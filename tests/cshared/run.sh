#!/bin/sh
# tests/cshared/run.sh: the C API test (make test-cshared).
#
# Builds c/tests/*.c against build/libgovscsi.so (make lib) and the public
# header c/include/govscsi.h, starts fake-xenstored (the xsfake server)
# with a dom0 socket and sockets for guest domains 5 and 6, lays out a
# minimal domain tree with Debian's xenstore-utils, starts the scripted
# vscsi peers (tests/cshared/peer: backend and frontend for guest 5, the
# frontend only for guest 6), and runs each test program with
# XENSTORED_PATH pointing at the fake server. Each program must print PASS.
#
# test_backend runs the userspace backend embedded in the library, which
# needs /dev/xen; so it runs against a second build of the library made
# here with the test-only tag govscsi_fakexen (xenfake grants and event
# channels inside the library; plugin/capi/xen_fake.go). build/libgovscsi.so,
# the one installed, never contains the fake; test_attach checks that its
# backend fails cleanly without /dev/xen.
# Also writes build/govscsi.pc from c/govscsi.pc.in.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
export PATH="/usr/local/go/bin:$PATH"
GO=${GO:-go}
CC=${CC:-cc}

[ -f "$build/libgovscsi.so" ] || { echo "run.sh: $build/libgovscsi.so missing (make lib)" >&2; exit 1; }

# The version make lib stamped into the library (make passes VERSION; its one
# source is internal/version/VERSION): the .pc says it, test_attach checks
# that vscsi_version() does.
version=${VERSION:-$(cat "$top/internal/version/VERSION")}
sed -e "s|@PREFIX@|$top|" -e "s|@LIBDIR@|$build|" -e "s|@INCLUDEDIR@|$top/c/include|" \
	-e "s|@VERSION@|$version|" "$top/c/govscsi.pc.in" > "$build/govscsi.pc"

work=$(mktemp -d /tmp/govscsi-cshared.XXXXXX)
xs_pid=
peer_pid=
peer6_pid=
# shellcheck disable=SC2317 # called through the trap
cleanup() {
	[ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null && wait "$peer_pid" 2>/dev/null
	[ -n "$peer6_pid" ] && kill "$peer6_pid" 2>/dev/null && wait "$peer6_pid" 2>/dev/null
	[ -n "$xs_pid" ] && kill "$xs_pid" 2>/dev/null && wait "$xs_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The library's soname is libgovscsi.so.0 (Makefile); the loader wants that name.
mkdir "$work/lib"
ln -s "$build/libgovscsi.so" "$work/lib/libgovscsi.so.0"

"$GO" build -o "$work/fake-xenstored" "$top/libxlgo/xsfake/cmd/fake-xenstored"
"$GO" build -o "$work/peer" "$top/tests/cshared/peer"
mkdir "$work/libfake"
(cd "$top" && "$GO" build -buildmode=c-shared -tags govscsi_fakexen \
	-ldflags="-extldflags=-Wl,-soname,libgovscsi.so.0 -X github.com/govscsi/govscsi/internal/version.stamped=$version" \
	-o "$work/libfake/libgovscsi.so.0" ./plugin/capi)
rm -f "$work/libfake/libgovscsi.so.h"

sock=$work/socket
"$work/fake-xenstored" -socket "$sock" -domain "5=$sock.5" -domain "6=$sock.6" > "$work/xs.out" 2> "$work/xs.err" &
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
xenstore-write /local/domain/6 "" /local/domain/6/name guest6 /local/domain/6/device "" \
	/local/domain/6/data "" /local/domain/0/backend/vscsiu ""
xenstore-chmod /local/domain/6 n0 r6
xenstore-chmod /local/domain/6/device n6 r0
xenstore-chmod /local/domain/6/data n0 r6
# guest7: no frontend plays it, so an attach to it waits (test_async aborts one)
xenstore-write /local/domain/7 "" /local/domain/7/name guest7 /local/domain/7/device ""
xenstore-chmod /local/domain/7 n0 r7

"$work/peer" -socket "$sock" -guest-socket "$sock.5" -domid 5 > "$work/peer.out" 2> "$work/peer.err" &
peer_pid=$!
"$work/peer" -v -frontend-only -fakexen-ring -guest-socket "$sock.6" -domid 6 > "$work/peer6.out" 2> "$work/peer6.err" &
peer6_pid=$!
for out in peer peer6; do
	i=0
	until grep -q '^ready' "$work/$out.out" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "run.sh: $out did not start" >&2; cat "$work/$out.err" >&2; exit 1; }
		sleep 0.05
	done
done

printf "vscsi = [ 'naa.5001405012345678:2,0:0:2:0' ]\n" > "$work/apply.cfg"

status=0

# ABI check: the header declares exactly the functions the library exports.
grep -v '^typedef' "$top/c/include/govscsi.h" | grep -o '\bvscsi_[a-z_]*(' | tr -d '(' | sort -u > "$work/declared"
for lib in "$build/libgovscsi.so" "$work/libfake/libgovscsi.so.0"; do
	nm -D --defined-only "$lib" | awk '$3 ~ /^vscsi_/ { print $3 }' | sort -u > "$work/exported"
	if ! diff -u "$work/declared" "$work/exported"; then
		echo "run.sh: c/include/govscsi.h and $lib disagree (- header, + library)" >&2
		status=1
	fi
done
# The production library must not contain the test-only fake Xen.
if strings "$build/libgovscsi.so" | grep -q 'GOVSCSI_FAKEXEN_GUESTS'; then
	echo "run.sh: $build/libgovscsi.so contains the govscsi_fakexen test code" >&2
	status=1
fi

# run_test NAME PROGRAM GUESTS [PANIC]: run one test program; it must print
# PASS. PANIC is the file whose existence makes the govscsi_fakexen build
# panic in vscsi_backend_start (c/tests/test_badargs.c).
run_test() {
	echo "== $1"
	if GOVSCSI_FAKEXEN_GUESTS=$3 GOVSCSI_FAKEXEN_PANIC=${4:-} "$2" "$work/apply.cfg" > "$work/out" 2>&1 && grep -q '^PASS$' "$work/out"; then
		cat "$work/out"
	else
		cat "$work/out"
		for f in peer.err peer6.err; do
			[ -s "$work/$f" ] && { echo "-- $f"; tail -20 "$work/$f"; }
		done
		echo "run.sh: $1 failed" >&2
		status=1
	fi
}

# Compile with the flags build/govscsi.pc gives, so the .pc is tested too.
pcflags=$(PKG_CONFIG_PATH="$build" pkg-config --cflags --libs govscsi)
pcversion=$(PKG_CONFIG_PATH="$build" pkg-config --modversion govscsi)
for src in "$top"/c/tests/*.c; do
	name=$(basename "$src" .c)
	libdir=$work/lib
	guests=
	panic=
	case $name in
	test_backend) libdir=$work/libfake guests=6 ;;
	test_badargs) libdir=$work/libfake panic=$work/panic ;;
	esac
	# shellcheck disable=SC2086 # pkg-config output is a list of flags
	"$CC" -Wall -Wextra -Werror -pthread -DGOVSCSI_TEST_VERSION="\"$pcversion\"" -o "$work/$name" "$src" $pcflags -Wl,-rpath,"$libdir"
	run_test "$name" "$work/$name" "$guests" "$panic"
	case $name in
	test_async)
		# Again under AddressSanitizer + LeakSanitizer: a C string or
		# go-pointer entry the library does not free, or a bad access
		# through what it hands to C, fails the run. (Go's own memory is
		# not malloc'ed, so LeakSanitizer sees only the C side.)
		# shellcheck disable=SC2086
		"$CC" -Wall -Wextra -Werror -pthread -DGOVSCSI_TEST_VERSION="\"$pcversion\"" -fsanitize=address -fno-omit-frame-pointer -g \
			-o "$work/$name.asan" "$src" $pcflags -Wl,-rpath,"$libdir"
		ASAN_OPTIONS=detect_leaks=1:handle_segv=0:allow_user_segv_handler=1:exitcode=23 \
			run_test "$name (ASan)" "$work/$name.asan" "$guests"
		;;
	esac
done

# The library left no connection open on the server: only the peer's two.
exit "$status"
