# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# lifecycle-userspace: a guest whose config names two file LUNs of govscsi's
# userspace backend keeps them through every routine operation, with
# vscsi-autoattach running and a plain stock xl:
#   1. plain `xl create`: the guest mounts its vscsi disk at boot (its init
#      does, as an fstab entry would), so the disk must be there before it
#      runs: vscsi-autoattach holds the domain until the vhost is probed;
#   2. `xl reboot`: the same under the new domid;
#   3. `xl save` + `xl restore` with a verify workload running in the guest
#      (fio crc32c write+verify, an O_DIRECT read probe at 5 Hz);
#   4. `xl migrate` to localhost under the same workload;
#   5. `xl save`, then `xl-vscsi restore` with no daemon running.
# After each: 0 fio errors, 0 verify errors, 0 guest dmesg I/O errors, the
# boot filesystem's stamp file unchanged, every device 4/4; the hold times,
# operation times and the guest's longest I/O gap are reported.
# timeout: 2400
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
# shellcheck source=tests/e2e/dom0/helpers-lifecycle.sh
. /rig/helpers-lifecycle.sh
if ! have vscsi-backend || ! have vscsi-autoattach || ! have xl-vscsi; then pending "build/ lacks the daemons"; fi
dir=/run/rig/lc
save=/var/lib/govscsi-lc # dom0's /tmp and /run are RAM: images go to disk
aalog=$(result_file autoattach-lifecycle-userspace.log)
res=$(result_file results-lifecycle-userspace.txt)
aa=
aa_start() {
	local n
	n=$(grep -c 'watching for new domains' "$aalog")
	vscsi-autoattach --config "$dir/autoattach.yaml" >>"$aalog" 2>&1 &
	aa=$!
	wait_for 30 bash -c '(($(grep -c "watching for new domains" "$1") > $2))' _ "$aalog" "$n" ||
		fail "vscsi-autoattach did not start: $(tail -3 "$aalog")"
}
aa_stop() {
	[[ -n $aa ]] || return 0
	kill "$aa" && wait "$aa"
	local rc=$?
	aa=
	((rc == 0)) || fail "vscsi-autoattach exited $rc on SIGTERM: $(tail -3 "$aalog")"
}
cleanup() {
	[[ -n $aa ]] && kill "$aa" 2>/dev/null
	for g in $(xl list | awk 'NR > 2 {print $1}'); do xl destroy "$g" 2>/dev/null; done
	us_cleanup
	rm -rf "$save"
}
trap cleanup EXIT

# Only this guest: a localhost migration needs room for two copies of it.
for g in $(xl list | awk 'NR > 2 {print $1}'); do xl destroy "$g" || fail "xl destroy $g"; done
type=$(us_backend_type)
[[ $type == vscsiu ]] || fail "unexpected userspace backend type '$type'"
us_no_kernel_backend || fail "cannot unload xen-scsiback"
rm -rf "$dir" "$save" && mkdir -p "$dir" "$save" "$US_DIR"
boot=$US_DIR/lc-boot.img data=$US_DIR/lc-data.img
rm -f "$boot" "$data"
truncate -s 32M "$boot" "$data" || fail "images"
head -c 1M /dev/urandom >"$dir/stamp"
stamp=$(sha256sum <"$dir/stamp" | cut -d' ' -f1)
mkdir -p "$dir/fs" && cp "$dir/stamp" "$dir/fs/stamp"
mkfs.ext4 -q -F -L vscsiboot -d "$dir/fs" "$boot" || fail "mkfs.ext4 of the boot disk"
lc_cfg "$dir/g1.cfg" vscsiboot "file:$boot,0:0:0:0" "file:$data,0:0:1:0" || fail "guest config"
cat >"$dir/autoattach.yaml" <<EOF
config_dirs: [ $dir ]
log_level: debug
hold_timeout: 120s
toolstack:
  flavour: userspace
  init_timeout: 5m
EOF
us_daemon_start "$type" || fail "vscsi-backend did not start"
: >"$aalog"
aa_start
echo "# lifecycle-userspace: one line per operation" >"$res"

# check_guest WHAT: the boot mount still there, its stamp intact, every vhost 4/4
check_guest() {
	local d out
	d=$(guest_domid) || fail "$1: no guest"
	out=$(guest_run -t 60 'grep -q " /mnt/boot " /proc/mounts && sha256sum /mnt/boot/stamp | cut -d" " -f1') ||
		fail "$1: boot filesystem: $out"
	[[ $out == "$stamp" ]] || fail "$1: the boot disk's stamp changed: $out, want $stamp"
	out=$(xl-vscsi scsi-list --json "$d") || fail "$1: scsi-list: $out"
	jq -e 'length == 1 and .[0].backend_state == 4 and .[0].frontend_state == 4 and
		(.[0].devs | length == 2 and all(.backend_state == 4 and .frontend_state == 4))' <<<"$out" >/dev/null ||
		fail "$1: vhost of domain $d not 4/4 with both devices: $(jq -c . <<<"$out")"
}
# hold_of DOMID: how long the daemon held the domain ("" if it did not)
hold_of() { lc_hold_of "$aalog" "$1"; }
# booted DOMID WHAT: the guest mounted its disk at boot, having found its
# vhost (backend in InitWait or later) at its first look
booted() {
	local line
	lc_rig_dir "$1" || fail "$2: rig dir of domain $1"
	lc_agent_ready "$1" || fail "$2: guest agent of domain $1 not ready"
	line=$(lc_boot_mount) || fail "$2: no boot-mount record"
	note "$2: $line"
	lc_boot_mount_ok "$line" ||
		fail "$2: the guest did not mount its vscsi disk at boot, or ran before its vscsi devices were there: $line"
	[[ -n $(hold_of "$1") ]] || fail "$2: vscsi-autoattach did not hold domain $1: $(grep "domid=$1" "$aalog" | tail -3)"
}

# 1. plain xl create
t0=$(now)
xl create "$dir/g1.cfg" >/dev/null || fail "xl create"
d=$(guest_domid) || fail "no domid after xl create"
booted "$d" "xl create"
check_guest "xl create"
echo "create domid=$d hold=$(hold_of "$d") ready_s=$(since "$t0")" >>"$res"
note "xl create: held $(hold_of "$d"), guest up with its disk mounted $(since "$t0") s after xl create"

# 2. xl reboot
t0=$(now)
xl reboot "$GUEST_NAME" || fail "xl reboot"
wait_for 300 bash -c "d2=\$(xl domid $GUEST_NAME 2>/dev/null) && [[ \$d2 != $d ]]" || fail "no new domid after xl reboot"
d=$(guest_domid) || fail "guest gone after xl reboot"
booted "$d" "xl reboot"
check_guest "xl reboot"
echo "reboot domid=$d hold=$(hold_of "$d") ready_s=$(since "$t0")" >>"$res"
note "xl reboot: held $(hold_of "$d"), guest up with its disk mounted $(since "$t0") s after xl reboot"

fdev=$(lc_disk 0:1:0) || fail "no data disk in the guest"
bdev=$(lc_disk 0:0:0) || fail "no boot disk in the guest"

# op NAME CMD...: run an operation under the workload, report it
op() {
	local name=$1 t0 t1 first
	shift
	lc_workload_start "$fdev" "$bdev" || fail "$name: workload"
	sleep 5
	t0=$(now)
	"$@" || fail "$name: $*"
	t1=$(now)
	d=$(guest_domid) || fail "$name: no guest afterwards"
	lc_rig_dir "$d" || fail "$name: rig dir of domain $d"
	sleep 10 # I/O after the operation
	if ! lc_workload_stop; then
		guest_run 'dmesg | tail -20' | sed 's/^/    /'
		fail "$name: the guest saw I/O errors"
	fi
	check_guest "$name"
	first=$(lc_first_io_after "$t0")
	echo "$name domid=$d op_s=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.1f", a-b}') first_io_after_op_start_s=$first max_gap_s=$LC_MAX_GAP hold=$(hold_of "$d") written_mb=$LC_WRITTEN_MB fio_err=$LC_IO_ERR verify_err=$LC_VERIFY_ERR dmesg_err=$LC_DMESG_ERR" >>"$res"
	note "$name: took $(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.1f", a-b}') s; the guest's I/O resumed $first s after it began (longest gap ${LC_MAX_GAP} s); held $(hold_of "$d")"
}
save_restore() { xl save "$GUEST_NAME" "$save/g1.save" >/dev/null && xl restore "$save/g1.save" >/dev/null; }
migrate_local() { xl migrate -s "" "$GUEST_NAME" "xl migrate-receive" >/dev/null 2>&1; }
save_restore_nodaemon() {
	xl save "$GUEST_NAME" "$save/g1.save" >/dev/null &&
		xl-vscsi --flavour userspace restore --config-dir "$dir" "$save/g1.save"
}

# 3. save + restore with the daemon
op "save+restore" save_restore
# 4. localhost migration with the daemon
op "migrate" migrate_local
# 5. save, then xl-vscsi restore without the daemon
aa_stop
op "save+xl-vscsi-restore" save_restore_nodaemon
aa_start

sed 's/^/    /' "$res"
xl destroy "$GUEST_NAME" || fail "xl destroy"
wait_for 60 bash -c "! xenstore-exists /local/domain/0/backend/vscsiu/$d" || fail "vscsi trees of $d left after xl destroy"
aa_stop
