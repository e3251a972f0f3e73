# shellcheck shell=bash
# Host-side settings and helpers for the govscsi Xen test ground. Sourced by
# tests/e2e/rig.sh and the steps under tests/e2e/steps/.
#
# Everything downloaded or built lives under $RIG_DIR (a cache: delete it, or
# run `rig.sh clean`, to start from scratch). Logs of a run go to $RIG_LOGS.

E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)   # tests/e2e
TOP=$(cd "$E2E/../.." && pwd)                           # repository root
RIG_DIR=${RIG_DIR:-/var/cache/govscsi-rig}
RIG_LOGS=${RIG_LOGS:-$TOP/build/e2e-logs}
case $RIG_LOGS in /*) ;; *) RIG_LOGS=$TOP/$RIG_LOGS ;; esac
# shellcheck disable=SC2034 # used by the steps
SUITE=bookworm
XENVER=4.17
# Debian mirror: the host's own (first URIs line of its deb822 sources), so a
# machine behind a local mirror keeps using it.
MIRROR=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# Packages installed in the dom0 root. The guest's userland is taken from the
# same root (see steps/30-guest.sh), so fio & co. are listed here too.
# man-db: the host-install scenario reads the installed man pages as an admin would.
# tgt + open-iscsi: a virtual tape library (tgt's SSC tape and SMC changer
# emulation) logged in over loopback iSCSI, for the tape-changer scenario;
# mt-st and mtx: what a backup admin drives them with (also in the guest).
# shellcheck disable=SC2034 # used by the steps
DOM0_PKGS=("xen-utils-$XENVER" xenstore-utils sg3-utils lsscsi fio e2fsprogs util-linux kmod procps iproute2 busybox tar jq man-db tgt open-iscsi mt-st mtx)

RIG_T0=${RIG_T0:-$SECONDS}
export RIG_T0

# log MSG...: progress line with the time since the rig started, "[rig 01:23] ...".
log() {
	local t=$((SECONDS - RIG_T0))
	printf '[rig %02d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*"
}
die() {
	log "ERROR: $*" >&2
	exit 1
}

# kernel package pinned by the fetch step; read it only after apt-get update
# (stale lists name an older ABI: docs/testing.md, "What it builds").
kpkg() { cat "$RIG_DIR/kpkg"; }
kver() { local p; p=$(kpkg) && echo "${p#linux-image-}"; }

# hash_of ARGS...: a short hash of strings and (if they name files) file contents.
hash_of() {
	local a
	for a in "$@"; do
		if [[ -f $a ]]; then
			printf 'file %s\n' "${a##*/}"
			cat "$a"
		else
			printf 'str %s\n' "$a"
		fi
	done | sha256sum | cut -c1-16
}

# cached NAME KEY FUNCTION: run FUNCTION unless the step NAME last succeeded
# with the same KEY. Keys are built from everything the step depends on (its
# own script, package versions, the keys of the steps it builds on), so a
# change anywhere reruns exactly the steps affected. Prints the timing.
cached() {
	local name=$1 key=$2 fn=$3 stamp="$RIG_DIR/stamps/$1"
	mkdir -p "$RIG_DIR/stamps"
	if [[ -f $stamp && $(cat "$stamp") == "$key" ]]; then
		log "$name: cached ($key)"
		return 0
	fi
	rm -f "$stamp"
	log "$name: building ($key)"
	local t0=$SECONDS
	"$fn" || die "$name failed"
	echo "$key" >"$stamp"
	log "$name done in $((SECONDS - t0)) s"
	echo "$name $((SECONDS - t0))" >>"$RIG_LOGS/timings.txt"
}

# step_key NAME: the stored key of a finished step (input to later keys).
step_key() { cat "$RIG_DIR/stamps/$1" 2>/dev/null || echo none; }

# pkg_version PKG: the candidate version apt would install.
pkg_version() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2; exit}'; }
