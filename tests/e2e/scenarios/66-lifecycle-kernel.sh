# shellcheck shell=bash
# lifecycle-kernel: lifecycle-userspace's run (lc_main in helpers-lifecycle.sh)
# with the kernel backend: xen-scsiback and two LIO fileio LUNs on image
# files (scripts/lio-xen-pvscsi.sh), vscsi-autoattach with flavour kernel,
# and a PVH guest throughout (lifecycle-userspace covers the PV guest; the
# autoattach scenario xl reboot with the kernel backend): plain `xl create`
# with a boot-time mount, `xl save` + `xl restore` and a localhost `xl
# migrate` with the daemon, `xl save` + `xl-vscsi restore` without it, each
# under a crc32c verify workload; results in results-lifecycle-kernel.txt.
# timeout: 2400
# shellcheck source=tests/e2e/dom0/helpers-lifecycle.sh
. /rig/helpers-lifecycle.sh
if ! have vscsi-autoattach || ! have xl-vscsi; then pending "build/ lacks the daemons"; fi
trap 'lc_cleanup; lio-xen-pvscsi.sh delete lcboot; lio-xen-pvscsi.sh delete lcdata' EXIT
lc_only_guest || fail "cannot destroy the other guests"
LC_NAME=lifecycle-kernel LC_FLAVOUR=kernel LC_TYPE=vscsi LC_GUEST=pvh
img=/srv/govscsi-lc
mkdir -p "$img"
lc_images "$img/boot.img" "$img/data.img" || fail "images"
W=naa.5001405065000001
{ lio-xen-pvscsi.sh delete lcboot && lio-xen-pvscsi.sh delete lcdata; } || fail "LIO cleanup before the test"
lio-xen-pvscsi.sh create lcboot "$img/boot.img" $W 0 >/dev/null || fail "LIO fileio LUN 0"
lio-xen-pvscsi.sh create lcdata "$img/data.img" $W 1 >/dev/null || fail "LIO fileio LUN 1"
LC_VSCSI=("$W:0,0:0:0:0" "$W:1,0:0:1:0")
lc_main
