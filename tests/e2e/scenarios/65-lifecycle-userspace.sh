# shellcheck shell=bash
# lifecycle-userspace: a guest whose config names two file LUNs of govscsi's
# userspace backend keeps them through every routine operation, with
# vscsi-autoattach running and a plain stock xl (lc_main in helpers-lifecycle.sh):
#   1. plain `xl create`: the guest mounts its vscsi disk at boot (its init
#      does, as an fstab entry would), so the disk must be there before it
#      runs: vscsi-autoattach holds the domain until the vhost is probed;
#   2. `xl reboot`: the same under the new domid;
#   3. `xl save` + `xl restore` with a verify workload running in the guest
#      (fio crc32c write+verify, an O_DIRECT read probe at 1 Hz);
#   4. `xl migrate` to localhost under the same workload (of a PVH guest:
#      Debian's Xen cannot live-migrate PV guests, see lc_main);
#   5. `xl save`, then `xl-vscsi restore` with no daemon running.
# After each: 0 fio errors, 0 verify errors, 0 guest dmesg I/O errors, the
# boot filesystem's stamp file unchanged, every device 4/4; the hold times,
# operation times and the guest's longest I/O gap go to
# results-lifecycle-userspace.txt.
# timeout: 2400
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
# shellcheck source=tests/e2e/dom0/helpers-lifecycle.sh
. /rig/helpers-lifecycle.sh
if ! have vscsi-backend || ! have vscsi-autoattach || ! have xl-vscsi; then pending "build/ lacks the daemons"; fi
trap 'lc_cleanup; us_cleanup' EXIT
lc_only_guest || fail "cannot destroy the other guests"
LC_NAME=lifecycle-userspace LC_FLAVOUR=userspace LC_TYPE=$(us_backend_type)
[[ $LC_TYPE == vscsiu ]] || fail "unexpected userspace backend type '$LC_TYPE'"
us_no_kernel_backend || fail "cannot unload xen-scsiback"
mkdir -p "$US_DIR"
lc_images "$US_DIR/lc-boot.img" "$US_DIR/lc-data.img" || fail "images"
LC_VSCSI=("file:$US_DIR/lc-boot.img,0:0:0:0" "file:$US_DIR/lc-data.img,0:0:1:0")
us_daemon_start "$LC_TYPE" || fail "vscsi-backend did not start"
lc_main
