# shellcheck shell=bash disable=SC2016
# hotplug-kernel (draft for tests/e2e/scenarios; needs hotplug/scripts/vscsi-govscsi
# staged in /rig/bin next to build/vscsi-hotplug): the vscsi hotplug script on
# real configfs with xen-scsiback. A file-backed LUN that does not exist is
# created by the script's add when xl-vscsi attaches (p-devname supplied by a
# shim until xl-vscsi writes it), the guest sees an LIO disk, the record is in
# /run/govscsi/hotplug, destroy-vhost's remove restores configfs exactly; then
# the same through udev (65-govscsi-vscsi.rules) without xl-vscsi running it.
# timeout: 300
have vscsi-hotplug || pending "build/vscsi-hotplug not built"
have vscsi-govscsi || pending "hotplug/scripts/vscsi-govscsi not staged in /rig/bin"
have xl-vscsi || pending "build/xl-vscsi not built"
export GOVSCSI_HOTPLUG_BIN=/rig/bin/vscsi-hotplug
script=/rig/bin/vscsi-govscsi
C=/sys/kernel/config/target
log=/var/log/xen/xen-hotplug.log

ensure_guest || fail "no guest"
d=$(guest_domid)
mkdir -p /var/lib/rig
img=/var/lib/rig/hp0.img
rm -f "$img"
truncate -s 64M "$img" || fail "backing file"
pdev="naa.5001405$(printf %s "$img" | md5sum | cut -c1-9):0" # hotplug.PlannedPDev
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

# 1. xl-vscsi runs the script (libxl's block-script convention)
shim=/tmp/vscsi-shim
printf '#!/bin/sh\n[ "$1" = add ] && xenstore-write "$XENBUS_PATH/vscsi-devs/dev-0/p-devname" %s\nexec %s "$@"\n' "$img" "$script" >"$shim"
chmod +x "$shim"
t0=$(now)
out=$(xl-vscsi scsi-attach --hotplug-script "$shim" "$d" "$pdev" 0:0:0:0 2>&1) ||
	fail "attach with the hotplug script: $out; log: $(tail -5 "$log")"
note "attach with LUN creation took $(since "$t0") s"
v=$(xenstore-list "/local/domain/0/backend/vscsi/$d" | tail -1)
be=/local/domain/0/backend/vscsi/$d/$v
[[ $(xenstore-read "$be/hotplug-status") == connected ]] || fail "hotplug-status $(xenstore-read "$be/hotplug-status")"
[[ $(xenstore-read "$be/vscsi-devs/dev-0/state") == 4 ]] || fail "dev-0 state $(xenstore-read "$be/vscsi-devs/dev-0/state")"
grep -q 'look again' "$log" && note "xen-scsiback refused the LUN first; the script re-requested it"
lio-xen-pvscsi.sh list | grep -q "p-dev=$pdev" || fail "lio-xen-pvscsi.sh list does not show $pdev: $(lio-xen-pvscsi.sh list)"
[[ -f /run/govscsi/hotplug/vscsi-$d-$v.json ]] || fail "no record in /run/govscsi/hotplug"
out=$(guest_run -t 60 'for i in $(seq 1 150); do lsscsi | grep -q LIO-ORG && break; sleep 0.2; done; lsscsi') || fail "guest: $out"
grep -q LIO-ORG <<<"$out" || fail "guest sees no LIO disk: $out"
xl-vscsi destroy-vhost --hotplug-script "$script" "$d" "$v" >/dev/null 2>&1 || fail "destroy-vhost"
[[ "$(snap)" == "$before" ]] || fail "configfs after remove differs: $(diff <(echo "$before") <(snap) | head -5)"
[[ ! -e /run/govscsi/hotplug/vscsi-$d-$v.json ]] || fail "record left after remove"

# 2. failure: a p-dev LIO lacks and no p-devname: attach fails naming it
out=$(xl-vscsi scsi-attach --hotplug-script "$script" "$d" naa.5001405099999999:0 0:0:0:1 2>&1) && fail "attach of a missing LUN succeeded"
grep -q 'naa.5001405099999999:0' <<<"$out" || fail "error does not name the p-dev: $out"

# 3. udev runs it (no --hotplug-script) for an LUN that exists (creation
# through udev needs xl-vscsi to write p-devname in its first transaction)
[[ -f /rig/hotplug/65-govscsi-vscsi.rules ]] || pending "udev rule not staged in /rig/hotplug"
install -m 644 /rig/hotplug/65-govscsi-vscsi.rules /etc/udev/rules.d/ || fail "install rule"
install -m 755 "$script" /etc/xen/scripts/vscsi-govscsi || fail "install wrapper"
install -D -m 755 /rig/bin/vscsi-hotplug /usr/lib/govscsi/vscsi-hotplug || fail "install binary"
udevadm control --reload || fail "udevadm control --reload"
lio-xen-pvscsi.sh create hp1 "$img" naa.5001405012340001 0 >/dev/null || fail "LIO LUN for the udev case"
out=$(xl-vscsi scsi-attach "$d" naa.5001405012340001:0 0:0:0:0 2>&1) || fail "attach: $out"
v=$(xenstore-list "/local/domain/0/backend/vscsi/$d" | tail -1)
wait_xs "/local/domain/0/backend/vscsi/$d/$v/hotplug-status" connected 30 || fail "udev did not run the script: $(tail -5 "$log")"
xl-vscsi destroy-vhost "$d" "$v" >/dev/null 2>&1 || fail "destroy-vhost"
lio-xen-pvscsi.sh list | grep -q '^hp1 ' || fail "udev's remove took a LUN the admin made"
lio-xen-pvscsi.sh delete hp1 || fail "delete hp1"
rm -f /etc/udev/rules.d/65-govscsi-vscsi.rules "$img"
udevadm control --reload
