# shellcheck shell=bash disable=SC2016
# hotplug-kernel: xl-vscsi runs the vscsi hotplug script (hotplug/scripts/
# vscsi-govscsi -> vscsi-hotplug) the way libxl runs block scripts. A dom0
# block device with no LIO LUN (a loop device over a file) is attached with
# --hotplug-script: xl-vscsi writes the planned p-dev (hotplug.PlannedPDev)
# with p-devname = the device, the script's add creates the LIO backstore,
# port and LUN, hotplug-status=connected, the guest sees the disk and can
# write and read it; destroy-vhost's remove tears down exactly what add made
# (configfs compared before/after, the script's record removed). A p-dev LIO
# lacks with no p-devname fails naming it, leaving xenstore as it was.
# (The udev half of the hotplug script needs udevd, which the rig's dom0 does
# not run: covered by hotplug/'s unit tests only.)
# timeout: 400
have vscsi-hotplug || pending "build/vscsi-hotplug not built"
have vscsi-govscsi || pending "hotplug/scripts/vscsi-govscsi not staged in /rig/bin"
have xl-vscsi || pending "build/xl-vscsi not built"
# shellcheck source=tests/e2e/dom0/helpers-toolstack.sh
. /rig/helpers-toolstack.sh
export GOVSCSI_HOTPLUG_BIN=/rig/bin/vscsi-hotplug
script=/rig/bin/vscsi-govscsi
C=/sys/kernel/config/target
log=/var/log/xen/xen-hotplug.log

guest_running || ensure_guest || fail "no guest"
d=$(guest_domid)
n0=$(guest_run 'lsscsi | grep -cw disk')
mkdir -p /var/lib/rig
img=/var/lib/rig/hp0.img
rm -f "$img"
truncate -s 48M "$img" || fail "backing file"
modprobe loop 2>/dev/null # no udevd in dom0 to load it on demand
loop=$(losetup -f --show "$img") || fail "losetup $img"
note "backing: $loop over $img"
# The fabric stays once registered; load it first so before/after compare.
modprobe xen-scsiback || fail "modprobe xen-scsiback"
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
[[ -d $C/xen-pvscsi ]] || mkdir "$C/xen-pvscsi" || fail "xen-pvscsi fabric"
snap() {
	{
		find "$C/core" -mindepth 1 -maxdepth 2 -type d
		find "$C/xen-pvscsi" -mindepth 1 -maxdepth 5 \( -name 'naa.*' -o -name 'tpgt_*' -o -name 'lun_*' -o -type l \)
	} 2>/dev/null | sort
}
before=$(snap)
xs_before=$(ts_xs_snap "$d")

out=$(xl-vscsi scsi-attach --dry-run --hotplug-script "$script" g1 "$loop" 3:0:0:0 2>&1) || fail "dry run: $out"
pdev=$(sed -n 's|.*/p-dev = "\(.*\)"$|\1|p' <<<"$out" | head -1)
[[ $pdev == naa.5001405* ]] || fail "dry run writes no planned p-dev (hotplug.PlannedPDev) for $loop: $out"
grep -q "p-devname = \"$loop\"" <<<"$out" || fail "dry run writes no p-devname $loop: $out"
note "planned p-dev $pdev for $loop"
t0=$(now)
out=$(xl-vscsi scsi-attach --hotplug-script "$script" g1 "$loop" 3:0:0:0 2>&1) ||
	fail "attach with the hotplug script: $out; log: $(tail -5 "$log")"
note "attach with LUN creation took $(since "$t0") s"
v=$(ts_vhost_of g1 3) || fail "no vhost for vdev host 3"
be=$(xenstore-read "/local/domain/$d/device/vscsi/$v/backend") || fail "frontend $v has no backend node"
[[ $(xenstore-read "$be/hotplug-status") == connected ]] || fail "hotplug-status $(xenstore-read "$be/hotplug-status")"
js=$(xl-vscsi scsi-list --json g1)
jq -e --argjson v "$v" --arg p "$pdev" '.[] | select(.vhost == $v) | any(.devs[]; .p_dev == $p and .backend_state == 4 and .frontend_state == 4)' <<<"$js" >/dev/null ||
	fail "scsi-list: $pdev not connected: $js"
grep -q 'look again' "$log" 2>/dev/null && note "xen-scsiback refused the LUN first; the script re-requested it"
lio-xen-pvscsi.sh list | grep -q "p-dev=$pdev" || fail "lio-xen-pvscsi.sh list does not show $pdev: $(lio-xen-pvscsi.sh list)"
[[ -f /run/govscsi/hotplug/vscsi-$d-$v.json ]] || fail "no record in /run/govscsi/hotplug: $(ls /run/govscsi/hotplug 2>&1)"
ts_wait_disks $((n0 + 1)) 60 || fail "guest does not see the script-made disk"
out=$(guest_run 'dev=$(for b in /sys/block/sd*; do [ $(cat $b/size) = 98304 ] && echo /dev/${b##*/}; done); dd if=/dev/urandom of=/tmp/p bs=4096 count=64 2>/dev/null && dd if=/tmp/p of=$dev oflag=direct bs=4096 2>/dev/null && dd if=$dev of=/tmp/q bs=4096 count=64 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q && md5sum </tmp/p') ||
	fail "I/O on the script-made disk: $out"
gsum=$(tail -1 <<<"$out" | cut -c1-32)
hsum=$(dd if="$loop" bs=4096 count=64 iflag=direct 2>/dev/null | md5sum | cut -c1-32)
[[ $gsum == "$hsum" ]] || fail "guest wrote $gsum, $loop holds $hsum"
out=$(xl-vscsi destroy-vhost --hotplug-script "$script" g1 "$v" 2>&1) || fail "destroy-vhost: $out"
ts_wait_disks "$n0" 60 || fail "guest still has the disk after destroy-vhost"
[[ "$(snap)" == "$before" ]] || fail "configfs after remove differs: $(diff <(echo "$before") <(snap) | head -5)"
[[ ! -e /run/govscsi/hotplug/vscsi-$d-$v.json ]] || fail "record left after remove"
[[ "$(ts_xs_snap "$d")" == "$xs_before" ]] || fail "xenstore after destroy-vhost differs: $(diff <(echo "$xs_before") <(ts_xs_snap "$d") | head)"
note "remove restored configfs and xenstore exactly"

# failure: a p-dev LIO lacks and no p-devname: attach fails naming it, nothing left
out=$(xl-vscsi scsi-attach --timeout 20s --hotplug-script "$script" g1 naa.5001405099999999:0 3:0:0:1 2>&1) &&
	fail "attach of a missing LUN succeeded"
note "missing LUN: $out"
grep -q 'naa.5001405099999999:0' <<<"$out" || fail "error does not name the p-dev: $out"
[[ "$(ts_xs_snap "$d")" == "$xs_before" ]] || fail "failed attach left xenstore changed: $(diff <(echo "$xs_before") <(ts_xs_snap "$d") | head)"
[[ "$(snap)" == "$before" ]] || fail "failed attach changed configfs: $(diff <(echo "$before") <(snap) | head -5)"
losetup -d "$loop" || fail "losetup -d $loop (still held?)"
rm -f "$img"
