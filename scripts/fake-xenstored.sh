#!/bin/bash
# fake-xenstored.sh: run govscsi's xenstore test server (libxlgo/xsfake) for
# shell tests with Debian's xenstore-* tools or anything linked with
# libxenstore. No hypervisor needed.
#
#   eval "$(scripts/fake-xenstored.sh start DIR [DOMID...])"
#       starts the server with its dom0 socket at DIR/socket (plus
#       DIR/socket.<domid> for each DOMID, whose clients act as that domain)
#       and prints `export XENSTORED_PATH=DIR/socket`.
#   XENSTORED_PATH=DIR/socket.5 xenstore-read name   # acting as domain 5
#   scripts/fake-xenstored.sh stop DIR
#       stops it and prints the final tree (xenstore-ls -f -p format).
#
# The server is built into DIR from the current source (the Go build cache
# makes that quick), so a stale build/fake-xenstored is never used.
set -euo pipefail

usage() { echo "usage: $0 start DIR [DOMID...] | stop DIR" >&2; exit 2; }
(($# >= 2)) || usage
cmd=$1 dir=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)

case "$cmd" in
start)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	bin="$dir/fake-xenstored"
	(cd "$root" && PATH="/usr/local/go/bin:$PATH" go build -o "$bin" ./libxlgo/xsfake/cmd/fake-xenstored)
	args=(-socket "$dir/socket" -dump)
	for d in "$@"; do
		[[ "$d" =~ ^[0-9]+$ ]] || { echo "$0: bad domid '$d'" >&2; exit 2; }
		args+=(-domain "$d=$dir/socket.$d")
	done
	"$bin" "${args[@]}" >"$dir/out" 2>"$dir/err" &
	echo $! >"$dir/pid"
	for _ in $(seq 100); do
		grep -q '^ready' "$dir/out" 2>/dev/null && break
		kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/err" >&2; exit 1; }
		sleep 0.05
	done
	grep -q '^ready' "$dir/out" || { echo "$0: server did not start" >&2; exit 1; }
	echo "export XENSTORED_PATH=$dir/socket"
	;;
stop)
	[[ -f "$dir/pid" ]] || { echo "$0: no server in $dir" >&2; exit 1; }
	pid=$(cat "$dir/pid")
	kill "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -f "$dir/pid"
	tail -n +2 "$dir/out"
	;;
*) usage ;;
esac
