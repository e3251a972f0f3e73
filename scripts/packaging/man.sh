#!/bin/sh
# Check and compress the man pages (docs/man/*.[1-8], hand-written roff)
# into $BUILD/man/<page>.gz: `make man`. groff warnings fail the build;
# `man -l docs/man/<page>` shows a page from the tree.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
: "${BUILD:=build}"
mkdir -p "$BUILD/man"
for src in docs/man/*.[1-8]; do
	page=$(basename "$src")
	warn=$(groff -man -ww -z "$src" 2>&1)
	if [ -n "$warn" ]; then
		echo "man: $src: $warn" >&2
		exit 1
	fi
	gzip -9n -c "$src" >"$BUILD/man/$page.gz"
	echo "  MAN     $BUILD/man/$page.gz"
done
