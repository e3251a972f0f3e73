#!/bin/bash
# rig.sh: the govscsi Xen test ground. Real Xen 4.17 + a Debian dom0 + a PV
# guest with xen-scsifront, all under QEMU (TCG), built from Debian packages.
#
#   tests/e2e/rig.sh [test]   build what is stale, boot, run every scenario,
#                             exit 0 iff every expected scenario passed
#   tests/e2e/rig.sh build    only build (fetch, dom0 root, initramfs, images)
#   tests/e2e/rig.sh boot     boot + scenarios with the images as they are
#   tests/e2e/rig.sh shell    build, then an interactive dom0 shell on this
#                             terminal (Ctrl-a x quits QEMU)
#   tests/e2e/rig.sh clean    delete the cache ($RIG_DIR)
#
# Environment: RIG_DIR (cache, default /var/cache/govscsi-rig), RIG_LOGS (logs,
# default build/e2e-logs), RIG_TIMEOUT (whole boot, s, default 3600),
# RIG_ONLY ("name name": run only these scenarios), RIG_ACCEL (tcg|kvm; kvm is
# only chosen when asked for: kvm_pvm cannot run Xen, see docs/testing.md),
# RIG_QEMU_MEM (MiB, 3072), RIG_DOM0_MEM (MiB, 1024), RIG_SKIP_DEPS=1.
# Details: docs/testing.md.
set -euo pipefail
# shellcheck source=tests/e2e/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
# shellcheck source=tests/e2e/steps/10-fetch.sh
. "$E2E/steps/10-fetch.sh"
# shellcheck source=tests/e2e/steps/20-dom0root.sh
. "$E2E/steps/20-dom0root.sh"
# shellcheck source=tests/e2e/steps/30-initramfs.sh
. "$E2E/steps/30-initramfs.sh"
# shellcheck source=tests/e2e/steps/35-rootimg.sh
. "$E2E/steps/35-rootimg.sh"
# shellcheck source=tests/e2e/steps/40-image.sh
. "$E2E/steps/40-image.sh"
# shellcheck source=tests/e2e/lib/boot.sh
. "$E2E/lib/boot.sh"

build() {
	[[ $(id -u) == 0 ]] || die "the rig needs root (debootstrap, chroot, mkfs)"
	if [[ ${RIG_SKIP_DEPS:-0} != 1 ]]; then
		"$TOP/scripts/deps.sh" --rig >/dev/null || die "scripts/deps.sh --rig failed"
	fi
	apt_refresh
	cached fetch "$(fetch_key)" do_fetch
	cached dom0root "$(dom0root_key)" do_dom0root
	cached initramfs "$(initramfs_key)" do_initramfs
	cached rootimg "$(rootimg_key)" do_rootimg
	local t0=$SECONDS
	do_rigdisk
	echo "rigdisk $((SECONDS - t0))" >>"$RIG_LOGS/timings.txt"
}

main() {
	local cmd=${1:-test}
	mkdir -p "$RIG_DIR" "$RIG_LOGS"
	# one run per cache: images, the out disk and stamps are shared state
	if [[ $cmd != clean ]]; then
		exec 8>"$RIG_DIR/.lock"
		flock -n 8 || die "another rig run holds $RIG_DIR/.lock"
	fi
	case $cmd in
	build) : >"$RIG_LOGS/timings.txt"; build ;;
	test) : >"$RIG_LOGS/timings.txt"; build; boot_test ;;
	boot) : >"$RIG_LOGS/timings.txt"; boot_test ;;
	shell) : >"$RIG_LOGS/timings.txt"; build; boot_shell ;;
	clean) rm -rf "$RIG_DIR"; log "removed $RIG_DIR" ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
	esac
}
main "$@"
