# shellcheck shell=bash disable=SC2016 # guest-side code in single quotes
# Helpers for the lifecycle scenarios (65-lifecycle-*): a guest that mounts a
# vscsi disk at boot (govscsi.mount= in its config's extra=), and a verify
# workload that runs in the guest through an operation (xl save/restore,
# migrate, a backend restart) and counts what the guest saw.
#
#   lc_cfg FILE LABEL VSCSI...     g1.cfg + govscsi.mount=LABEL + the vscsi= entries
#   lc_rig_dir DOMID               the agent's rig/ directory for a (new) domid
#   lc_agent_ready DOMID           wait for a fresh guest's agent (commands from 1)
#   lc_boot_mount                  the guest's /run/boot-mount line (fails if missing)
#   lc_boot_mount_ok LINE          0 if that line says the disk was mounted and the
#                                  vscsi devices were there at the guest's first look
#                                  (vhost 0, its backend in InitWait or later)
#   lc_hold_of LOG DOMID           how long vscsi-autoattach (log LOG) held DOMID
#   lc_disk CTL                    the guest's /dev/sdX at c:t:l CTL (e.g. 0:1:0)
#   lc_workload_start DEV PROBE    fio crc32c write+verify on DEV, and a 5 Hz O_DIRECT
#                                  read probe of PROBE, both in the background
#   lc_workload_stop               stop both; sets LC_IO_ERR LC_VERIFY_ERR LC_DMESG_ERR
#                                  LC_MAX_GAP (s, probe) LC_PROBE_ERR LC_WRITTEN_MB,
#                                  prints a summary line
#   lc_first_io_after EPOCH        seconds from EPOCH to the first probe read after it
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
		(while :; do if dd if=$probe of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; then date +%s.%N; else echo ERR \$(date +%s.%N); fi; sleep 0.2; done >/tmp/lc.probe 2>&1 </dev/null) & echo \$! >/tmp/lc.probe.pid
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
