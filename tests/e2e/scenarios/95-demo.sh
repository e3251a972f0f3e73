# shellcheck shell=bash disable=SC2016 # guest-side code in single quotes
# demo: the narrated tour `make demo` shows, in the order a new user meets
# govscsi. Every line it prints is a "DEMO:" line on the serial console,
# which the host echoes as it arrives: each command, then its output.
#
# Act 1, govscsi's own path (no LIO anywhere): the Debian package installed
# in dom0; vscsi-backend (a file and a RAM disk) and vscsi-autoattach started
# as their units would; an ordinary xl config with vscsi= lines; plain
# `xl create`; the guest mounts its vscsi disk at boot (the devices were
# there before it ran: autoattach held the new domain until they were
# probed); I/O; a hot-add; `xl-vscsi scsi-list` and `stats`, and the
# Prometheus metrics the backend writes for node_exporter; `xl reboot`
# (the file written before it is read after it); `xl destroy`, and nothing
# is left behind (xenstore, grant mappings, open files, LUNs).
# Act 2, the kernel backend (xen-scsiback + LIO) through `xl-vscsi create`.
# Guest I/O errors in dmesg fail the demo.
#
# Runs only when selected by name (RIG_ONLY="dom0-ready demo", as make demo
# does): in a full `make e2e` it reports PENDING.
# timeout: 900
grep -Eq 'rig\.only=([^ ]*:)?demo(:| |$)' /proc/cmdline || pending "runs with make demo only (RIG_ONLY=demo)"
# shellcheck source=tests/e2e/dom0/helpers-toolstack.sh
. /rig/helpers-toolstack.sh
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
# shellcheck source=tests/e2e/dom0/helpers-lifecycle.sh
. /rig/helpers-lifecycle.sh
say() { rig_log "DEMO: $*"; }
shq() { # shq ARG...: the arguments as a shell line (quoted where needed)
	local a out=()
	for a; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
	done
	echo "${out[*]}"
}
show() { # show CMD...: narrate a dom0 command and its output
	local out rc
	say "dom0# $(shq "$@")"
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
mapfile -t debs < <(ls /rig/bin/govscsi_*.deb 2>/dev/null)
((${#debs[@]} == 1)) || fail "want one build/govscsi_*.deb (make deb), found ${#debs[@]}"
aalog=$(result_file autoattach-demo.log)
belog=$(result_file vscsi-backend-demo.log)
be_pid='' aa_pid=''
cleanup() {
	for g in $(xl list | awk 'NR > 2 {print $1}'); do xl destroy "$g" 2>/dev/null; done
	[[ -n $aa_pid ]] && kill "$aa_pid" 2>/dev/null
	[[ -n $be_pid ]] && kill "$be_pid" 2>/dev/null
	rm -f /etc/xen/g1.cfg
}
trap cleanup EXIT
t00=$(now)

say "==== Act 1: govscsi's own path: the package, plain xl create, the userspace backend (no LIO)"
# (a clean dom0: no guest, no older package, no kernel backend loaded)
for g in $(xl list | awk 'NR > 2 {print $1}'); do xl destroy "$g" || fail "xl destroy $g"; done
if dpkg -s govscsi >/dev/null 2>&1; then dpkg -P govscsi >/dev/null || fail "purging an older govscsi"; fi
us_no_kernel_backend || fail "cannot unload xen-scsiback"
say "== 1. install the package (built by make deb)"
cp "${debs[0]}" /root/ || fail "copy the package"
t0=$(now)
show dpkg -i "/root/$(basename "${debs[0]}")" || fail "dpkg -i"
say "    (installed in $(since "$t0") s)"
# From here on the installed tools, as an admin's shell finds them.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin:/rig/bin
say "dom0# command -v xl-vscsi vscsi-backend vscsi-autoattach; ls /lib/systemd/system/vscsi-*"
out=$(command -v xl-vscsi vscsi-backend vscsi-autoattach && ls /lib/systemd/system/vscsi-*) || fail "installed tools: $out"
while IFS= read -r l; do say "    $l"; done <<<"$out"
say "dom0# lsmod | grep -c xen_scsiback"
say "    $(lsmod | grep -c xen_scsiback)   (the kernel backend is not loaded: this act needs no LIO)"

say "== 2. the userspace backend daemon: the example configuration, started as its unit would"
show cp /usr/share/doc/govscsi/examples/vscsi-backend.yaml /etc/govscsi/vscsi-backend.yaml || fail "example config"
prom=/var/lib/prometheus/node-exporter/govscsi.prom
say "dom0# cat >>/etc/govscsi/vscsi-backend.yaml    # Prometheus metrics for node_exporter's textfile collector"
printf 'metrics:\n  textfile: %s\n  interval: 2s\n' "$prom" >>/etc/govscsi/vscsi-backend.yaml
show grep -Ev '^[[:space:]]*(#|$)' /etc/govscsi/vscsi-backend.yaml
mkdir -p /var/lib/govscsi/images "${prom%/*}"
modprobe -q xen-gntdev && modprobe -q xen-evtchn # the unit's ExecStartPre
say "dom0# vscsi-backend --config /etc/govscsi/vscsi-backend.yaml --foreground &    # systemd: systemctl enable --now vscsi-backend"
vscsi-backend --config /etc/govscsi/vscsi-backend.yaml --foreground >>"$belog" 2>&1 &
be_pid=$!
wait_for 30 test -S /run/govscsi/vscsi-backend.sock || fail "vscsi-backend did not start: $(tail -3 "$belog")"
say "    $(grep -m1 'vscsi backend starting' "$belog" | sed 's/^[^ ]* //')"

say "== 3. vscsi-autoattach: gives domains started by plain xl create their vscsi= devices"
show sed -i 's/^  flavour: kernel$/  flavour: userspace/' /etc/govscsi/autoattach.yaml || fail "edit autoattach.yaml"
show grep -E '^(config_dirs|  - |hold_timeout)|^  flavour' /etc/govscsi/autoattach.yaml
say "dom0# vscsi-autoattach --config /etc/govscsi/autoattach.yaml &    # systemd: systemctl enable --now vscsi-autoattach"
vscsi-autoattach --config /etc/govscsi/autoattach.yaml >>"$aalog" 2>&1 &
aa_pid=$!
wait_for 30 grep -q 'watching for new domains' "$aalog" || fail "vscsi-autoattach did not start: $(tail -3 "$aalog")"
say "    $(grep -m1 'watching for new domains' "$aalog" | sed 's/^[^ ]* //')"

say "== 4. a disk image with a filesystem, and an ordinary xl config with vscsi= lines"
img=/var/lib/govscsi/images/g1-boot.img
rm -rf /tmp/demo-fs && mkdir -p /tmp/demo-fs && echo "hello from dom0, on a file served by vscsi-backend" >/tmp/demo-fs/hello.txt
show truncate -s 64M "$img" || fail "image"
show mkfs.ext4 -q -F -L demoboot -d /tmp/demo-fs "$img" || fail "mkfs"
lc_cfg /etc/xen/g1.cfg demoboot "file:$img,0:0:0:0" "ram:64M,0:0:1:0" || fail "guest config"
show cat /etc/xen/g1.cfg
say "    (the guest's init mounts LABEL=demoboot at boot, as an fstab line would: govscsi.mount= in extra=)"

say "== 5. plain xl create (xl itself ignores vscsi=; vscsi-autoattach holds the new domain until its disks are there)"
t0=$(now)
show xl create /etc/xen/g1.cfg || fail "xl create"
d=$(guest_domid) || fail "no domid after xl create"
lc_rig_dir "$d" || fail "rig dir of domain $d"
lc_agent_ready "$d" || fail "guest agent of domain $d not ready"
say "    (guest up $(since "$t0") s after xl create)"
say "dom0# grep 'domid=$d' $aalog    # what vscsi-autoattach did"
grep -E "domid=$d( |\$)" "$aalog" | grep -E 'attaching|attached|released|connected' | sed 's/^[^ ]* //' |
	while IFS= read -r l; do say "    $l"; done
[[ -n $(lc_hold_of "$aalog" "$d") ]] || fail "vscsi-autoattach did not hold domain $d"
bm=$(lc_boot_mount) || fail "no boot-mount record"
gshow 'cat /run/boot-mount'
lc_boot_mount_ok "$bm" || fail "the guest did not find and mount its vscsi disk at boot: $bm"
gshow 'lsscsi; df -h /mnt/boot | tail -1; cat /mnt/boot/hello.txt' || fail "boot disk"
show xl-vscsi scsi-list g1 || fail "scsi-list"

say "== 6. I/O: a file on the boot disk (kept for after the reboot); the RAM disk: 32 MiB written and read back with O_DIRECT, then 5 s of fio"
ram=$(lc_disk 0:1:0) || fail "no RAM disk in the guest"
gshow 'date > /mnt/boot/before-reboot.txt && sync && cat /mnt/boot/before-reboot.txt' || fail "write to the boot disk"
gshow "dd if=/dev/urandom of=/tmp/r bs=1M count=32 2>/dev/null && dd if=/tmp/r of=$ram bs=1M oflag=direct 2>/dev/null && dd if=$ram of=/tmp/r2 bs=1M count=32 iflag=direct 2>/dev/null && cmp /tmp/r /tmp/r2 && echo '32 MiB read back: identical'; rm -f /tmp/r /tmp/r2" ||
	fail "RAM disk round trip"
gshow "fio --name=ram --filename=$ram --rw=randrw --bs=4k --direct=1 --ioengine=libaio --iodepth=16 --runtime=5 --time_based 2>&1 | grep -E '^ *(read|write): IOPS|err='" ||
	fail "fio on the RAM disk"

say "== 7. hot-add a third disk (a 32 MiB RAM disk) to the running guest"
show xl-vscsi --flavour userspace scsi-attach g1 ram:32M 0:0:2:0 || fail "scsi-attach"
lc_disk 0:2:0 >/dev/null || fail "the guest does not see the hot-added disk"
gshow 'lsscsi'

say "== 8. what the toolstack and the backend see"
show xl-vscsi scsi-list g1 || fail "scsi-list"
show xl-vscsi stats || fail "stats"
# the textfile is rewritten every 2 s: wait for one that has the hot-added disk
wait_for 10 grep -q 'govscsi_lun_commands_total{.*pdev="ram:32M",op="read"}' "$prom" || fail "no metrics for the hot-added disk in $prom"
show grep -E '^govscsi_lun_(commands_total\{.*op="write"|errors_total)' "$prom" || fail "metrics textfile"
errs=$(awk '/^govscsi_lun_errors_total/ { s += $NF } END { print s + 0 }' "$prom")
[[ $errs == 0 ]] || fail "the backend counted $errs command errors"
say "== 9. xl reboot: a new domain, held and given its disks again; the file written before is there"
t0=$(now)
show xl reboot g1 || fail "xl reboot"
wait_for 300 bash -c "d2=\$(xl domid g1 2>/dev/null) && [[ \$d2 != $d ]]" || fail "no new domain after xl reboot"
d=$(guest_domid) || fail "guest gone after xl reboot"
lc_rig_dir "$d" || fail "rig dir of domain $d"
lc_agent_ready "$d" || fail "guest agent of domain $d not ready after the reboot"
[[ -n $(lc_hold_of "$aalog" "$d") ]] || fail "vscsi-autoattach did not hold the rebooted domain $d"
say "    (domain $d held $(lc_hold_of "$aalog" "$d") by vscsi-autoattach, up $(since "$t0") s after xl reboot)"
bm=$(lc_boot_mount) || fail "no boot-mount record after the reboot"
gshow 'cat /run/boot-mount; cat /mnt/boot/before-reboot.txt' || fail "the file written before the reboot"
lc_boot_mount_ok "$bm" || fail "after xl reboot the guest did not find and mount its disk at boot: $bm"
gshow 'lsscsi'
say "    (the config's two disks; the hot-added one is not in the config, so a new domain does not get it, as with xl's own devices)"
n=$(guest_run "dmesg | grep -cE '$LC_DMESG_RE'")
say "g1\$ dmesg | grep -cE 'I/O error|...'"
say "    $n"
[[ $n == 0 ]] || fail "the guest logged $n I/O errors: $(guest_run "dmesg | grep -E '$LC_DMESG_RE' | tail -5")"

say "== 10. xl destroy: vscsi-autoattach removes the domain's vscsi trees; the backend lets go of everything"
betree=/local/domain/0/backend/vscsiu/$d
maps() { grep -c /dev/xen/gntdev "/proc/$be_pid/maps"; }
imgfds() { find "/proc/$be_pid/fd" -lname "$img" 2>/dev/null | wc -l; }
say "    (before: backend tree $betree $(xenstore-exists "$betree" && echo present), $(maps) grant mapping(s), $(imgfds) descriptor(s) of the image in vscsi-backend)"
show xl destroy g1 || fail "xl destroy"
wait_for 60 bash -c "! xenstore-exists $betree" || fail "$betree left 60 s after xl destroy"
wait_for 30 bash -c "(( \$(grep -c /dev/xen/gntdev /proc/$be_pid/maps) == 0 ))" || fail "vscsi-backend still has $(maps) grant mappings"
wait_for 30 bash -c "(( \$(find /proc/$be_pid/fd -lname $img 2>/dev/null | wc -l) == 0 ))" || fail "vscsi-backend still has the image open"
show xl list
say "dom0# xenstore-ls -f | grep -cE 'vscsi|/libxl/$d'"
left=$(xenstore-ls -f 2>/dev/null | grep -E "backend/vscsiu?/$d/|device/vscsi|/libxl/$d(/|$)" | grep -c .)
say "    $left"
((left == 0)) || fail "xenstore nodes of domain $d left: $(xenstore-ls -f | grep -E "backend/vscsiu?/$d/|/libxl/$d" | head -5)"
say "    (grant mappings in vscsi-backend: $(maps), descriptors of the image: $(imgfds))"
show xl-vscsi stats || fail "stats after destroy"
st=$(xl-vscsi stats --json) || fail "stats --json"
jq -e '(.luns | length) == 0 and ((.vhosts // []) | length) == 0' <<<"$st" >/dev/null || fail "stats still list LUNs: $(jq -c . <<<"$st")"
{ kill -0 "$be_pid" && kill -0 "$aa_pid"; } || fail "a daemon died"
say "dom0# kill -TERM vscsi-autoattach vscsi-backend    # systemd: systemctl stop ..."
kill "$aa_pid"
wait "$aa_pid" || fail "vscsi-autoattach exited $? on SIGTERM"
aa_pid=
kill "$be_pid"
wait "$be_pid" || fail "vscsi-backend exited $? on SIGTERM"
be_pid=
[[ ! -e $prom ]] || fail "$prom left after vscsi-backend stopped"
say "    (both exited 0; the metrics textfile went with vscsi-backend)"
rm -f /etc/xen/g1.cfg
say "== act 1 done in $(since "$t00") s"

t01=$(now)
W=naa.5001405000000d01
W2=naa.5001405000000d02
say "==== Act 2: the kernel backend (xen-scsiback + LIO), driven by xl-vscsi create"
say "== 1. dom0 exports a 64 MiB file through LIO (the kernel's SCSI target, xen-scsiback's backend)"
show lio-xen-pvscsi.sh create demo0 /var/lib/rig/demo0.img:64M $W 0 || fail "LIO LUN"
say "== 2. an ordinary xl config with a vscsi= line naming the LIO LUN"
{ cat /rig/guest/g1.cfg; echo "vscsi = [ '$W:0,0:0:0:0' ]"; } >/tmp/demo.cfg
show grep -E '^(name|type|memory|vscsi)' /tmp/demo.cfg
say "== 3. xl-vscsi create: xl create -p, attach the vscsi= devices, unpause"
say "dom0# xl-vscsi create /tmp/demo.cfg"
t0=$(now)
out=$(ts_create g1 /tmp/demo.cfg --timeout 300s) || { say "    $out"; fail "xl-vscsi create: $out"; }
say "    (guest booted in $(since "$t0") s)"
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
n=$(guest_run "dmesg | grep -cE '$LC_DMESG_RE'")
[[ $n == 0 ]] || fail "the guest logged $n I/O errors: $(guest_run "dmesg | grep -E '$LC_DMESG_RE' | tail -5")"
say "== 7. xl destroy: without vscsi-autoattach running, xl leaves the backend's nodes; xl-vscsi cleanup removes them"
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
say "== act 2 done in $(since "$t01") s"
say "== the whole demo in $(since "$t00") s"
