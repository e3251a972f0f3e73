#!/bin/bash
# deps.sh: install everything govscsi needs to build and test on a Debian 12
# host, as root, from Debian's apt and the Go module proxy only. Idempotent:
# a second run installs nothing.
#
#   scripts/deps.sh          build + unit/integration test dependencies
#   scripts/deps.sh --rig    also what the QEMU/Xen test ground needs
set -euo pipefail

GO_WANT=go1.26.8
want_rig=0
[[ "${1:-}" == "--rig" ]] && want_rig=1

log() { printf '[deps %(%H:%M:%S)T] %s\n' -1 "$*"; }

pkgs=(build-essential pkg-config git libxen-dev xenstore-utils shellcheck ca-certificates sg3-utils util-linux
	groff-base man-db dpkg-dev lintian)
if ((want_rig)); then
	pkgs+=(qemu-system-x86 debootstrap kmod cpio e2fsprogs busybox-static libc6-dev xz-utils zstd)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	log "apt: installing ${missing[*]}"
	t0=$SECONDS
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	log "apt: done in $((SECONDS - t0)) s"
fi

# Go: the module needs $GO_WANT's language version. Debian 12 ships 1.19,
# which is too old, so we fetch the official toolchain module through the Go
# module proxy (the same mechanism GOTOOLCHAIN=auto uses) and install it in
# /usr/local/go.
have_go() {
	local g
	for g in /usr/local/go/bin/go "$(command -v go 2>/dev/null || true)"; do
		[[ -x "$g" ]] || continue
		local v
		v=$("$g" env GOVERSION 2>/dev/null || true)
		# go1.26.x or newer is fine.
		if [[ "$v" =~ ^go1\.([0-9]+) ]] && ((BASH_REMATCH[1] >= 26)); then
			return 0
		fi
	done
	return 1
}
if ! have_go; then
	log "go: $GO_WANT not found, fetching it through the Go module proxy"
	t0=$SECONDS
	if ! command -v go >/dev/null; then
		apt-get install -y -qq --no-install-recommends golang-go >/dev/null
	fi
	tmp=$(mktemp -d)
	dir=$(cd "$tmp" && GOFLAGS=-mod=mod GOPATH="$tmp/gopath" go mod download -json \
		"golang.org/toolchain@v0.0.1-${GO_WANT}.linux-amd64" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	[[ -d "$dir" ]] || { echo "deps: toolchain download failed" >&2; exit 1; }
	rm -rf /usr/local/go
	cp -a "$dir" /usr/local/go
	chmod -R u+w /usr/local/go
	chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
	chmod -R u+w "$tmp" && rm -rf "$tmp" # the module cache is read-only
	log "go: $(/usr/local/go/bin/go version) installed in $((SECONDS - t0)) s"
fi
export PATH=/usr/local/go/bin:$PATH
log "go modules: downloading"
(cd "$(dirname "$0")/.." && go mod download)
log "ready"
