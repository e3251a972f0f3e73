# shellcheck shell=bash disable=SC2016
# demo: the narrated tour `make demo` shows (issue 5 item 6). Every line it
# prints is a "DEMO:" line on the serial console, which the host echoes as it
# arrives: a guest created from an xl config with a vscsi= line through
# `xl-vscsi create`, its lsscsi, a file written and read on the disk, a
# hot-add, scsi-list, a detach, and `xl destroy` + `xl-vscsi cleanup`.
# Runs only when selected by name (RIG_ONLY="dom0-ready demo", as make demo
# does): in a full `make e2e` it reports PENDING.
# timeout: 600
grep -Eq 'rig\.only=([^ ]*:)?demo(:| |$)' /proc/cmdline || pending "runs with make demo only (RIG_ONLY=demo)"
have xl-vscsi || fail "build/xl-vscsi not built"
# shellcheck source=tests/e2e/dom0/helpers-toolstack.sh
. /rig/helpers-toolstack.sh
say() { rig_log "DEMO: $*"; }
show() { # show CMD...: narrate a dom0 command and its output
	local out rc
	say "dom0# $*"
	out=$("$@" 2>&1)
	rc=$?
	[[ -n $out ]] && while IFS= read -r l; do say "    $l"; done <<<"$out"
	return $rc
}
gshow() { # gshow 'CMD': narrate a command run in the guest and its output
	local out rc
	say "g1\$ $1"
	out=$(guest_run -t 120 "$1")
	rc=$?
	[[ -n $out ]] && while IFS= read -r l; do say "    $l"; done <<<"$out"
	return $rc
}
W=naa.5001405000000d01
W2=naa.5001405000000d02
t0=$(now)

say "== 1. dom0 exports a 64 MiB file through LIO (the kernel's SCSI target, xen-scsiback's backend)"
show lio-xen-pvscsi.sh create demo0 /var/lib/rig/demo0.img:64M $W 0 || fail "LIO LUN"
say "== 2. an ordinary xl config with a vscsi= line (plain xl would ignore it)"
{ cat /rig/guest/g1.cfg; echo "vscsi = [ '$W:0,0:0:0:0' ]"; } >/tmp/demo.cfg
show grep -E '^(name|type|memory|vscsi)' /tmp/demo.cfg
say "== 3. xl-vscsi create: xl create -p, attach the vscsi= devices, unpause"
say "dom0# xl-vscsi create /tmp/demo.cfg"
out=$(ts_create g1 /tmp/demo.cfg --timeout 300s) || { say "    $out"; fail "xl-vscsi create: $out"; }
say "    (guest booted; $(since "$t0") s so far)"
show xl list
show xl-vscsi scsi-list g1 || fail "scsi-list"
say "== 4. inside the guest: the disk, a filesystem, a file written and read back"
ts_wait_disks 1 60 >/dev/null || fail "guest does not see the disk"
gshow 'lsscsi' || fail "lsscsi"
gshow 'd=/dev/$(ls /sys/block | grep "^sd" | head -1); mkfs.ext4 -q -F $d && mkdir -p /mnt/d && mount $d /mnt/d && echo "hello from $(hostname) via PV SCSI" >/mnt/d/hello.txt && umount /mnt/d && mount $d /mnt/d && cat /mnt/d/hello.txt && df -h /mnt/d | tail -1 && umount /mnt/d' ||
	fail "file round trip"
say "== 5. hot-add a second disk (a 16 MiB ramdisk LUN) to the running guest"
show lio-xen-pvscsi.sh create demo1 ram:16M $W2 0 || fail "LIO ramdisk"
show xl-vscsi scsi-attach g1 $W2:0 0:0:0:1 || fail "scsi-attach"
show xl-vscsi scsi-list g1
ts_wait_disks 2 60 >/dev/null || fail "guest does not see the hot-added disk"
gshow 'lsscsi'
say "== 6. detach it again"
show xl-vscsi scsi-detach g1 0:0:0:1 || fail "scsi-detach"
show xl-vscsi scsi-list g1
ts_wait_disks 1 60 >/dev/null || fail "guest still has the detached disk"
gshow 'lsscsi'
say "== 7. xl destroy: xl knows nothing of vscsi and leaves the backend's nodes; xl-vscsi cleanup removes them"
d=$(guest_domid)
show xl destroy g1 || fail "xl destroy"
wait_for 60 sh -c "! xenstore-read /local/domain/$d/name" || fail "domain still there"
say "dom0# xenstore-ls /local/domain/0/backend/vscsi | wc -l"
say "    $(xenstore-ls /local/domain/0/backend/vscsi 2>/dev/null | wc -l) nodes left behind"
show xl-vscsi cleanup || fail "cleanup"
say "dom0# xenstore-ls /local/domain/0/backend/vscsi | wc -l"
say "    $(xenstore-ls /local/domain/0/backend/vscsi 2>/dev/null | wc -l) nodes"
xenstore-read "/local/domain/0/backend/vscsi/$d" >/dev/null 2>&1 && fail "backend/vscsi/$d left after cleanup"
wait_for 30 lio-xen-pvscsi.sh delete demo0 || fail "LIO delete demo0"
lio-xen-pvscsi.sh delete demo1 || fail "LIO delete demo1"
say "== done in $(since "$t0") s: create, I/O, hot-add, list, detach, destroy + cleanup"
