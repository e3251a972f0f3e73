# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# perf-compare: fio in the guest against the userspace backend (vscsi-backend,
# ram:256M) and the kernel backend (xen-scsiback + LIO rd_mcp 256 MiB), same
# guest, same boot. RUNS rounds, each running every job on both backends in
# alternating order (ours first in odd rounds): 4k randread QD1 (p50/p99),
# 4k randread QD16 (IOPS), 1 MiB sequential read QD1 (MiB/s). CPU: dom0's
# /proc/stat busy time per job for both backends (minus the harness's own
# polling, measured with an idle job), and the daemon's utime+stime for ours.
# Results: results-perf-compare.json (scripts/perf-report.sh turns it into
# docs/performance.md).
# timeout: 1500
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
trap us_cleanup EXIT
have vscsi-backend || pending "build/vscsi-backend not built"
RUNS=${RIG_FIO_RUNS:-3}
SECS=${RIG_PERF_SECS:-5}
W=naa.5001405012345679
type=$(us_backend_type)
[[ -n $type ]] || pending "xl-vscsi apply --flavour userspace --dry-run --json gives no backend vhost"
us_no_kernel_backend || fail "cannot unload xen-scsiback"
ensure_guest || fail "no guest"
g=$GUEST_NAME
# ours and the kernel's at once only if they use different type directories:
# xen-scsiback would take any backend/vscsi vhost, ours included (P3)
if [[ $type == vscsi ]]; then mode=sequential; else mode=alternating; fi
clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)
note "backend type of ours: $type, mode: $mode, dom0 clocksource: $clocksource"

dev_us='' dev_k=''
attach_ours() {
	us_daemon_start "$type" || fail "vscsi-backend did not start"
	out=$(us_attach "$g" ram:256M 0:0:0:0 2>&1) || fail "scsi-attach ram:256M: $out"
	dev_us=$(us_guest_dev GOVSCSI) || fail "guest shows no GOVSCSI disk"
}
detach_ours() {
	us_detach "$g" 0:0:0:0 >/dev/null 2>&1 || fail "scsi-detach ours"
	xl-vscsi destroy-vhost "$g" 0 >/dev/null 2>&1 || note "destroy-vhost 0: $(xl-vscsi destroy-vhost "$g" 0 2>&1)"
	us_daemon_stop || fail "daemon did not stop cleanly"
}
attach_kernel() {
	lio-xen-pvscsi.sh delete perf0 >/dev/null 2>&1
	lio-xen-pvscsi.sh create perf0 ram:256M $W 0 >/dev/null || fail "LIO ramdisk LUN"
	out=$(xl-vscsi scsi-attach --flavour kernel --timeout 60s "$g" "$W:0" 1:0:0:0 2>&1) ||
		fail "scsi-attach (kernel) $W:0: $out"
	dev_k=$(us_guest_dev LIO-ORG) || fail "guest shows no LIO disk"
}

busy_jiffies() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }
daemon_ticks() { [[ -n $(us_pid) ]] && sed 's/.*) //' "/proc/$(us_pid)/stat" | awk '{print $12 + $13}' || echo 0; }
runs=/tmp/perf-runs.jsonl
: >"$runs"
# job BACKEND DEV KIND FIO-ARGS...: one fio job, one JSON line in $runs
job() {
	local be=$1 dev=$2 kind=$3 c0 c1 u0 u1 t out
	shift 3
	c0=$(busy_jiffies) u0=$(daemon_ticks) t=$(now)
	out=$(guest_run -t $((SECS * 10 + 90)) "fio --name=$kind --filename=$dev --direct=1 --ioengine=libaio --runtime=$SECS --time_based --output-format=json $*") ||
		fail "fio $kind on $be failed: $(tail -3 <<<"$out")"
	c1=$(busy_jiffies) u1=$(daemon_ticks)
	[[ $be == ours ]] || u1=$u0
	sed -n '/^{/,$p' <<<"$out" | jq -c --arg be "$be" --arg kind "$kind" --arg wall "$(since "$t")" \
		--argjson cpu "$((c1 - c0))" --argjson dcpu "$((u1 - u0))" --argjson run "$r" '.jobs[0].read |
		{backend: $be, kind: $kind, run: $run, iops: .iops, mib_s: (.bw / 1024), ios: .total_ios,
		 p50_us: (.clat_ns.percentile["50.000000"] / 1000), p99_us: (.clat_ns.percentile["99.000000"] / 1000),
		 dom0_busy_s: ($cpu / 100), daemon_cpu_s: ($dcpu / 100), wall_s: ($wall | tonumber)}' >>"$runs" ||
		fail "fio $kind on $be: no JSON result"
}
# idle: the harness's own dom0 cost (guest_run polling) for the same wall time
idle() {
	local c0 t
	c0=$(busy_jiffies) t=$(now)
	guest_run -t $((SECS * 10 + 60)) "sleep $SECS" >/dev/null || fail "idle job"
	jq -nc --argjson cpu "$(($(busy_jiffies) - c0))" --arg wall "$(since "$t")" --argjson run "$r" \
		'{backend: "idle", kind: "idle", run: $run, dom0_busy_s: ($cpu / 100), wall_s: ($wall | tonumber)}' >>"$runs"
}
round() { # BACKEND DEV
	local be=$1 dev=$2
	# one unrecorded warm-up per backend and round (the first I/O after attach is slow)
	guest_run -t 120 "fio --name=warm --filename=$dev --direct=1 --ioengine=libaio --rw=randread --bs=4k --iodepth=16 --runtime=2 --time_based" >/dev/null ||
		fail "warm-up on $be failed"
	job "$be" "$dev" randread-4k-qd1 --rw=randread --bs=4k --iodepth=1
	job "$be" "$dev" randread-4k-qd16 --rw=randread --bs=4k --iodepth=16
	job "$be" "$dev" seqread-1m-qd1 --rw=read --bs=1M --iodepth=1
}

r=0
if [[ $mode == alternating ]]; then
	attach_ours
	attach_kernel
	note "ours: $dev_us, kernel: $dev_k; guest max_sectors_kb ours $(guest_run "cat /sys/block/${dev_us#/dev/}/queue/max_sectors_kb"), kernel $(guest_run "cat /sys/block/${dev_k#/dev/}/queue/max_sectors_kb")"
	for r in $(seq 1 "$RUNS"); do
		idle
		if ((r % 2)); then round ours "$dev_us"; round kernel "$dev_k"; else round kernel "$dev_k"; round ours "$dev_us"; fi
		note "round $r/$RUNS done"
	done
else
	attach_ours
	for r in $(seq 1 "$RUNS"); do idle; round ours "$dev_us"; done
	st=$(us_stats) && note "daemon stats: $(jq -c '[.luns[] | {commands, p50: .latency_us.p50, p99: .latency_us.p99}]' <<<"$st")"
	detach_ours
	attach_kernel
	for r in $(seq 1 "$RUNS"); do idle; round kernel "$dev_k"; done
fi
if [[ -n $(us_pid) ]]; then
	st=$(us_stats) && note "daemon stats: $(jq -c '[.luns[] | {commands, p50: .latency_us.p50, p99: .latency_us.p99}]' <<<"$st")"
fi

res=$(result_file results-perf-compare.json)
jq -s --arg mode "$mode" --arg type "$type" --arg secs "$SECS" --arg kernel "$(uname -r)" \
	--arg xen "$(xl info | awk '/^xen_version/{print $3}')" --arg nr "$(nproc)" --arg cs "$clocksource" '
	def med: sort | .[(length / 2 | floor)];
	def stat(f): [.[] | f] | {median: med, min: min, max: max, n: length};
	(map(select(.backend == "idle")) | (map(.dom0_busy_s) | add) / (map(.wall_s) | add)) as $idle_rate |
	{mode: $mode, backend_type_ours: $type, dom0_clocksource: $cs, kernel: $kernel, xen: $xen, dom0_cpus: ($nr | tonumber),
	 accel: "QEMU TCG, 2 shared host cores: compare backends only within this rig",
	 ours: "vscsi-backend, ram:256M", theirs: "xen-scsiback + LIO rd_mcp 256 MiB",
	 seconds_per_job: ($secs | tonumber), idle_dom0_busy_per_s: $idle_rate, runs: .,
	 summary: ([.[] | select(.backend != "idle")] | group_by(.backend) | map({key: .[0].backend, value: {
	   randread_4k_qd1_p50_us: (map(select(.kind == "randread-4k-qd1")) | stat(.p50_us)),
	   randread_4k_qd1_p99_us: (map(select(.kind == "randread-4k-qd1")) | stat(.p99_us)),
	   randread_4k_qd16_iops: (map(select(.kind == "randread-4k-qd16")) | stat(.iops)),
	   seqread_1m_mib_s: (map(select(.kind == "seqread-1m-qd1")) | stat(.mib_s)),
	   dom0_cpu_us_per_io_qd16: (map(select(.kind == "randread-4k-qd16")) | stat((.dom0_busy_s - $idle_rate * .wall_s) / .ios * 1e6)),
	   daemon_cpu_us_per_io_qd16: (map(select(.kind == "randread-4k-qd16")) | stat(.daemon_cpu_s / .ios * 1e6))
	 }}) | from_entries)}' "$runs" >"$res" || fail "could not write $res"
note "summary: $(jq -c '.summary | map_values(map_values(.median))' "$res")"

# clean up
if [[ -n $(us_pid) ]]; then detach_ours; fi
if [[ -n $dev_k ]]; then
	xl-vscsi scsi-detach --timeout 60s "$g" 1:0:0:0 >/dev/null 2>&1 || note "kernel detach failed"
	xl-vscsi destroy-vhost "$g" 1 >/dev/null 2>&1 || note "kernel destroy-vhost failed"
	lio-xen-pvscsi.sh delete perf0 >/dev/null || note "LIO cleanup failed"
fi
