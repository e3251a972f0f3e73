# shellcheck shell=bash disable=SC2016 # guest-side code in single quotes
# Helpers for the lifecycle scenarios (65-lifecycle-*): a guest that mounts a
# vscsi disk at boot (govscsi.mount= in its config's extra=), and a verify
# workload that runs in the guest through an operation (xl save/restore,
# migrate, a backend restart) and counts what the guest saw.
#
#   lc_cfg FILE LABEL VSCSI...     g1.cfg + govscsi.mount=LABEL + the vscsi= entries
#   lc_pvh FILE                    make that config a PVH guest's (for xl migrate)
#   lc_rig_dir DOMID               the agent's rig/ directory for a (new) domid
#   lc_agent_ready DOMID           wait for a fresh guest's agent (commands from 1)
#   lc_boot_mount                  the guest's /run/boot-mount line (fails if missing)
#   lc_boot_mount_ok LINE          0 if that line says the disk was mounted and the
#                                  vscsi devices were there at the guest's first look
#                                  (vhost 0, its backend in InitWait or later)
#   lc_hold_of LOG DOMID           how long vscsi-autoattach (log LOG) held DOMID
#   lc_disk CTL                    the guest's /dev/sdX at c:t:l CTL (e.g. 0:1:0)
#   lc_workload_start DEV PROBE    fio crc32c write+verify on DEV, and a 1 Hz O_DIRECT
#                                  read probe of PROBE, both in the background
#   lc_workload_stop               stop both; sets LC_IO_ERR LC_VERIFY_ERR LC_DMESG_ERR
#                                  LC_MAX_GAP (s, probe) LC_PROBE_ERR LC_WRITTEN_MB,
#                                  prints a summary line
#   lc_first_io_after EPOCH        seconds from EPOCH to the first probe read after it
#   lc_main                        the whole lifecycle run, once the scenario set LC_NAME,
#                                  LC_FLAVOUR, LC_TYPE (backend type of the vhosts) and LC_VSCSI
#                                  (two vscsi= entries: the boot image of lc_images at 0:0:0:0,
#                                  the data image at 0:0:1:0) and started the backend
#
# The guest's wall clock (date) is Xen's: it stays comparable with dom0's
# across a save/restore, where the guest's own uptime would not.

lc_cfg() {
	local file=$1 label=$2 e list=
	shift 2
	for e in "$@"; do list+="${list:+, }'$e'"; done
	sed -e "s/^extra = \"\\(.*\\)\"/extra = \"\\1 govscsi.mount=$label\"/" /rig/guest/g1.cfg >"$file"
	echo "vscsi = [ $list ]" >>"$file"
	grep -q "govscsi.mount=$label" "$file"
}

# lc_pvh FILE: make the guest config FILE a PVH guest's. Under QEMU's TCG the
# emulated SVM gives Xen no next-instruction address for RDTSCP exits, and
# after a migration Xen traps the TSC of an HVM-type guest: the resumed guest
# then loops on "SVM Insn len emulation failed" unless its TSC stays native
# and RDTSCP is hidden (rig-only settings; real hardware needs neither).
lc_pvh() {
	sed -i -e 's/^type = .*/type = "pvh"/' "$1" &&
		printf 'tsc_mode = "native"\ncpuid = "host,rdtscp=0"\n' >>"$1" && grep -q '^type = "pvh"' "$1"
}

lc_rig_dir() { xenstore-write "/local/domain/$1/rig" "" && xenstore-chmod "/local/domain/$1/rig" "n$1"; }

lc_agent_ready() {
	if ! wait_xs "/local/domain/$1/rig/ready" 1 400; then
		grep -a 'GUEST' "$(guest_console)" | tail -5 | sed 's/^/    /'
		return 1
	fi
	echo 0 >"/run/rig/$GUEST_NAME.seq"
}

lc_boot_mount() {
	local out
	out=$(guest_run 'cat /run/boot-mount') || { note "no /run/boot-mount: $out"; return 1; }
	echo "$out"
}

lc_boot_mount_ok() {
	[[ $1 == *result=mounted* && $1 == *"vhosts_at_start=[0 ]"* && $1 =~ backend_state_at_start=[234] ]]
}

lc_hold_of() { grep -E "domain released.* domid=$2( |\$)" "$1" | tail -1 | sed -n 's/.*held=\([^ ]*\).*/\1/p'; }

lc_disk() {
	guest_run -t 60 'for i in $(seq 1 300); do for b in /sys/block/sd*; do [ -e "$b/device" ] || continue; case $(basename $(readlink -f $b/device)) in *:'"$1"') echo /dev/${b##*/}; exit 0;; esac; done; sleep 0.2; done; exit 1'
}

LC_DMESG_RE='I/O error|Buffer I/O|illegal rqid|rejecting I/O|offline device|timing out command|FAILED Result|hostbyte=|Disabling device|grant still in use|scsi_add_device'

lc_workload_start() {
	local dev=$1 probe=$2
	guest_run "rm -f /tmp/lc.*; dmesg | grep -cE '$LC_DMESG_RE' >/tmp/lc.dmesg0;
		fio --name=lc --filename=$dev --direct=1 --ioengine=libaio --rw=randwrite --bs=4k --iodepth=4 --size=32M \
			--verify=crc32c --verify_backlog=32 --verify_fatal=0 --continue_on_error=all --time_based --runtime=3600 \
			--output-format=json --output=/tmp/lc.fio.json >/tmp/lc.fio.err 2>&1 </dev/null & echo \$! >/tmp/lc.fio.pid
		(while :; do if dd if=$probe of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; then date +%s; else echo ERR \$(date +%s); fi; sleep 1; done >/tmp/lc.probe 2>&1 </dev/null) & echo \$! >/tmp/lc.probe.pid
		sleep 3; [ -s /tmp/lc.probe ] && kill -0 \$(cat /tmp/lc.fio.pid)" >/dev/null ||
		{ note "workload did not start: $(guest_run 'cat /tmp/lc.fio.err; tail -3 /tmp/lc.probe')"; return 1; }
}

lc_workload_stop() {
	local out json probe
	out=$(guest_run -t 120 'kill -INT $(cat /tmp/lc.fio.pid); kill $(cat /tmp/lc.probe.pid);
		for i in $(seq 1 300); do kill -0 $(cat /tmp/lc.fio.pid) 2>/dev/null || break; sleep 0.2; done
		echo "dmesg $(( $(dmesg | grep -cE "'"$LC_DMESG_RE"'") - $(cat /tmp/lc.dmesg0) ))"
		echo "verify $(grep -ciE "verify|bad magic|crc32c" /tmp/lc.fio.err)"') || { note "stopping the workload: $out"; return 1; }
	LC_DMESG_ERR=$(awk '$1 == "dmesg" {print $2}' <<<"$out")
	LC_VERIFY_ERR=$(awk '$1 == "verify" {print $2}' <<<"$out")
	# fio puts "fio: terminating on signal 2" before its JSON
	json=$(guest_run 'sed -n "/^{/,\$p" /tmp/lc.fio.json') || { note "no fio result"; return 1; }
	LC_IO_ERR=$(jq '[.jobs[] | .total_err // .error] | add' <<<"$json" 2>/dev/null) || LC_IO_ERR=unknown
	LC_WRITTEN_MB=$(jq '[.jobs[].write.io_kbytes] | add / 1024 | floor' <<<"$json" 2>/dev/null) || LC_WRITTEN_MB=0
	LC_VERIFIED_MB=$(jq '[.jobs[].read.io_kbytes] | add / 1024 | floor' <<<"$json" 2>/dev/null) || LC_VERIFIED_MB=0
	probe=$(guest_run 'cat /tmp/lc.probe')
	echo "$probe" >/run/rig/lc.probe
	LC_PROBE_ERR=$(grep -c '^ERR' <<<"$probe")
	LC_MAX_GAP=$(awk '$1 != "ERR" { if (p) { g = $1 - p; if (g > m) m = g }; p = $1 } END { printf "%.1f", m }' <<<"$probe")
	note "workload: ${LC_WRITTEN_MB} MiB written, ${LC_VERIFIED_MB} MiB verified; fio errors ${LC_IO_ERR}, verify errors ${LC_VERIFY_ERR}, guest dmesg errors ${LC_DMESG_ERR}, probe errors ${LC_PROBE_ERR}, longest I/O gap ${LC_MAX_GAP} s"
	[[ $LC_IO_ERR == 0 && $LC_VERIFY_ERR == 0 && $LC_DMESG_ERR == 0 && $LC_PROBE_ERR == 0 ]]
}

lc_first_io_after() {
	awk -v t="$1" '$1 != "ERR" && $1 > t { printf "%.1f", $1 - t; exit }' /run/rig/lc.probe
}

LC_DIR=/run/rig/lc
LC_SAVE=/var/lib/govscsi-lc # dom0's /tmp and /run are RAM: save images go to disk

# lc_images BOOT DATA: a 32 MiB boot image (ext4 "vscsiboot" with a random
# stamp file) and a 32 MiB data image; sets LC_STAMP (its sha256)
lc_images() {
	rm -rf "$LC_DIR" "$LC_SAVE" && mkdir -p "$LC_DIR/fs" "$LC_SAVE" || return 1
	rm -f "$1" "$2" && truncate -s 32M "$1" "$2" || return 1
	head -c 1M /dev/urandom >"$LC_DIR/fs/stamp"
	LC_STAMP=$(sha256sum <"$LC_DIR/fs/stamp" | cut -d' ' -f1)
	mkfs.ext4 -q -F -L vscsiboot -d "$LC_DIR/fs" "$1"
}

# lc_only_guest: no other domain (a localhost migration needs room for two copies)
lc_only_guest() {
	local g
	for g in $(xl list | awk 'NR > 2 {print $1}'); do xl destroy "$g" || return 1; done
}

lc_aa_start() { aa_start "$LC_AALOG" vscsi-autoattach --config "$LC_DIR/autoattach.yaml"; }
# lc_check_guest WHAT: the boot mount still there, its stamp intact, the vhost 4/4 with both devices
lc_check_guest() {
	local d out
	d=$(guest_domid) || fail "$1: no guest"
	out=$(guest_run -t 60 'grep -q " /mnt/boot " /proc/mounts && sha256sum /mnt/boot/stamp | cut -d" " -f1') ||
		fail "$1: boot filesystem: $out"
	[[ $out == "$LC_STAMP" ]] || fail "$1: the boot disk's stamp changed: $out, want $LC_STAMP"
	out=$(xl-vscsi scsi-list --json "$d") || fail "$1: scsi-list: $out"
	jq -e --arg t "$LC_TYPE" 'length == 1 and .[0].backend_type == $t and .[0].backend_state == 4 and .[0].frontend_state == 4 and
		(.[0].devs | length == 2 and all(.backend_state == 4 and .frontend_state == 4))' <<<"$out" >/dev/null ||
		fail "$1: vhost of domain $d not 4/4 ($LC_TYPE) with both devices: $(jq -c . <<<"$out")"
}
# lc_held DOMID: how long the scenario's daemon held the domain ("" if it did not)
lc_held() { lc_hold_of "$LC_AALOG" "$1"; }
# lc_booted DOMID WHAT: the guest mounted its disk at boot, having found its
# vhost at its first look, and the daemon held it
lc_booted() {
	local line
	lc_rig_dir "$1" || fail "$2: rig dir of domain $1"
	lc_agent_ready "$1" || fail "$2: guest agent of domain $1 not ready"
	line=$(lc_boot_mount) || fail "$2: no boot-mount record"
	note "$2: $line"
	lc_boot_mount_ok "$line" ||
		fail "$2: the guest did not mount its vscsi disk at boot, or ran before its vscsi devices were there: $line"
	[[ -n $(lc_held "$1") ]] || fail "$2: vscsi-autoattach did not hold domain $1: $(grep "domid=$1" "$LC_AALOG" | tail -3)"
}

# lc_op NAME CMD...: run an operation under the workload; one result line
lc_op() {
	local name=$1 t0 t1 d first took
	shift
	lc_workload_start "$LC_FDEV" "$LC_BDEV" || fail "$name: workload"
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
	lc_check_guest "$name"
	first=$(lc_first_io_after "$t0")
	took=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.1f", a-b}')
	echo "$name domid=$d op_s=$took first_io_after_op_start_s=$first max_gap_s=$LC_MAX_GAP hold=$(lc_held "$d") written_mb=$LC_WRITTEN_MB verified_mb=$LC_VERIFIED_MB fio_err=$LC_IO_ERR verify_err=$LC_VERIFY_ERR dmesg_err=$LC_DMESG_ERR probe_err=$LC_PROBE_ERR" >>"$LC_RES"
	note "$name: took $took s; the guest's I/O resumed $first s after it began (longest gap ${LC_MAX_GAP} s); held $(lc_held "$d")"
}
lc_save_restore() { xl save "$GUEST_NAME" "$LC_SAVE/g1.save" >/dev/null && xl restore "$LC_SAVE/g1.save" >/dev/null; }
lc_migrate_local() {
	local out
	out=$(result_file "xl-migrate-$LC_NAME.log")
	if ! xl migrate -s "" "$GUEST_NAME" "xl migrate-receive" >>"$out" 2>&1; then
		tail -n 15 "$out" | sed 's/^/    /'
		return 1
	fi
}
lc_save_restore_nodaemon() {
	xl save "$GUEST_NAME" "$LC_SAVE/g1.save" >/dev/null &&
		xl-vscsi --flavour "$LC_FLAVOUR" restore --config-dir "$LC_DIR" "$LC_SAVE/g1.save"
}

# lc_create WHAT: plain xl create of the config, the guest held, booted with its disk
lc_create() {
	local d t0
	t0=$(now)
	xl create "$LC_DIR/g1.cfg" >/dev/null || fail "$1"
	d=$(guest_domid) || fail "no domid after $1"
	lc_booted "$d" "$1"
	lc_check_guest "$1"
	echo "${1// /-} domid=$d hold=$(lc_held "$d") ready_s=$(since "$t0")" >>"$LC_RES"
	note "$1: held $(lc_held "$d"), guest up with its disk mounted $(since "$t0") s later"
	LC_FDEV=$(lc_disk 0:1:0) || fail "$1: no data disk in the guest"
	LC_BDEV=$(lc_disk 0:0:0) || fail "$1: no boot disk in the guest"
}

# lc_main: create (boot-time mount), reboot, save+restore and migrate with
# the daemon, save + xl-vscsi restore without it; see the scenarios'
# headers. With LC_GUEST=pvh the whole run is a PVH guest's and skips the
# reboot; by default (pv) the PV guest does create, reboot and save+restore,
# then a PVH guest the rest: a live migration puts the guest in log-dirty
# mode, which for a PV guest needs shadow paging, and Debian 12 builds Xen
# without it (CONFIG_SHADOW_PAGING unset: `xl migrate` of a PV guest fails
# with "Failed to enable logdirty: 95"); a PVH guest's uses HAP.
lc_main() {
	local d t0
	LC_AALOG=$(result_file "autoattach-$LC_NAME.log")
	LC_RES=$(result_file "results-$LC_NAME.txt")
	lc_cfg "$LC_DIR/g1.cfg" vscsiboot "${LC_VSCSI[@]}" || fail "guest config"
	printf 'config_dirs: [ %s ]\nlog_level: debug\nhold_timeout: 120s\ntoolstack:\n  flavour: %s\n  init_timeout: 5m\n' \
		"$LC_DIR" "$LC_FLAVOUR" >"$LC_DIR/autoattach.yaml"
	: >"$LC_AALOG"
	lc_aa_start
	echo "# $LC_NAME: one line per operation" >"$LC_RES"

	if [[ ${LC_GUEST:-pv} == pv ]]; then
		# 1. plain xl create
		lc_create "xl create"
		# 2. xl reboot
		d=$(guest_domid)
		t0=$(now)
		xl reboot "$GUEST_NAME" || fail "xl reboot"
		wait_for 300 bash -c "d2=\$(xl domid $GUEST_NAME 2>/dev/null) && [[ \$d2 != $d ]]" || fail "no new domid after xl reboot"
		d=$(guest_domid) || fail "guest gone after xl reboot"
		lc_booted "$d" "xl reboot"
		lc_check_guest "xl reboot"
		echo "reboot domid=$d hold=$(lc_held "$d") ready_s=$(since "$t0")" >>"$LC_RES"
		note "xl reboot: held $(lc_held "$d"), guest up with its disk mounted $(since "$t0") s after xl reboot"
		LC_FDEV=$(lc_disk 0:1:0) || fail "no data disk in the guest"
		LC_BDEV=$(lc_disk 0:0:0) || fail "no boot disk in the guest"
		# 3. save + restore with the daemon
		lc_op "save+restore" lc_save_restore
		xl destroy "$GUEST_NAME" || fail "xl destroy of the PV guest"
		lc_pvh "$LC_DIR/g1.cfg" || fail "PVH config"
		lc_create "xl create (PVH)"
	else
		lc_pvh "$LC_DIR/g1.cfg" || fail "PVH config"
		lc_create "xl create (PVH)"
		lc_op "save+restore (PVH)" lc_save_restore
	fi
	# 4. a localhost migration with the daemon
	lc_op "migrate" lc_migrate_local
	# 5. save, then xl-vscsi restore without the daemon
	aa_stop
	lc_op "save+xl-vscsi-restore" lc_save_restore_nodaemon
	lc_aa_start

	sed 's/^/    /' "$LC_RES"
	d=$(guest_domid) || fail "no guest at the end"
	xl destroy "$GUEST_NAME" || fail "xl destroy"
	wait_for 60 bash -c "! xenstore-exists /local/domain/0/backend/$LC_TYPE/$d" || fail "vscsi trees of $d left after xl destroy"
	aa_stop
}

# lc_cleanup: for the scenarios' EXIT trap
lc_cleanup() {
	local g
	[[ -n $AA_PID ]] && kill "$AA_PID" 2>/dev/null
	for g in $(xl list | awk 'NR > 2 {print $1}'); do xl destroy "$g" 2>/dev/null; done
	rm -rf "$LC_SAVE"
}
