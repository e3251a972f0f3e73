# shellcheck shell=bash disable=SC2016
# toolstack-destroy: a guest created by `xl-vscsi create` with two vhosts is
# destroyed with plain `xl destroy`; xl knows nothing of vscsi and leaves
# backend/vscsi/<domid> behind (P26); `xl-vscsi cleanup` removes it and the
# toolstack's /libxl/<domid>/vscsi; LIO's LUNs are free again afterwards.
# Last of the toolstack scenarios: it ends g1 and the LUNs of toolstack-create.
# timeout: 600
have xl-vscsi || pending "build/xl-vscsi not built"
# shellcheck source=tests/e2e/dom0/helpers-toolstack.sh
. /rig/helpers-toolstack.sh
cfg=/tmp/ts-g1.cfg
if [[ ! -f $cfg ]] || ! lio-xen-pvscsi.sh list | grep -q '^ts-file '; then
	lio-xen-pvscsi.sh create ts-file /var/lib/rig/ts-file.img:128M naa.50014050000000a2 0 >/dev/null || fail "LIO fileio LUN"
	lio-xen-pvscsi.sh create ts-ram2 ram:16M naa.50014050000000a6 0 >/dev/null || fail "LIO ramdisk LUN"
	{ cat /rig/guest/g1.cfg; echo "vscsi = [ 'naa.50014050000000a6:0,0:0:0:0', 'naa.50014050000000a2:0,1:0:0:0' ]"; } >$cfg
fi
# the guest of the earlier scenarios (its scsifront unloaded) goes the same way
if guest_domid >/dev/null; then
	xl destroy g1 || fail "xl destroy of the old g1"
	out=$(xl-vscsi cleanup 2>&1) || fail "xl-vscsi cleanup after the old g1: $out"
fi
out=$(ts_create g1 $cfg --timeout 300s) || fail "xl-vscsi create: $out"
d=$(guest_domid)
js=$(xl-vscsi scsi-list --json g1)
jq -e 'length == 2 and all(.[]; .backend_state == 4 and .frontend_state == 4)' <<<"$js" >/dev/null || fail "vhosts not connected: $js"
ts_wait_disks 2 60 || fail "guest does not see 2 disks"
be=/local/domain/0/backend/vscsi/$d
xenstore-read "$be" >/dev/null 2>&1 || fail "no $be while the guest runs"

xl destroy g1 || fail "xl destroy g1"
wait_for 60 sh -c "! xenstore-read /local/domain/$d/name" || fail "domain $d still in xenstore after xl destroy"
if xenstore-read "$be" >/dev/null 2>&1; then
	note "after xl destroy $be is left behind (P26): $(xenstore-ls -f "$be" | wc -l) nodes"
else
	note "xl destroy removed $be itself"
fi
out=$(xl-vscsi cleanup 2>&1) || fail "xl-vscsi cleanup: $out"
[[ -n $out ]] && note "cleanup: $out"
xenstore-read "$be" >/dev/null 2>&1 && fail "$be still there after cleanup: $(xenstore-ls -f "$be" | head -5)"
xenstore-read "/libxl/$d/vscsi" >/dev/null 2>&1 && fail "/libxl/$d/vscsi still there after cleanup"
xenstore-ls -f /local/domain/0/error 2>/dev/null | grep -q "vscsi/$d/" && fail "error nodes of domain $d left"
out=$(xl-vscsi cleanup 2>&1) || fail "second cleanup: $out"
# xen-scsiback let go of the LUNs: they can be deleted
for n in $(lio-xen-pvscsi.sh list | awk '$1 ~ /^ts-/ {print $1}'); do
	wait_for 30 lio-xen-pvscsi.sh delete "$n" || fail "LIO delete $n (still held by xen-scsiback?)"
done
modprobe -r scsi_debug 2>/dev/null || true
rm -f /var/lib/rig/ts-file.img
