# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# kernel-backend-smoke: the kernel backend (xen-scsiback + LIO ramdisk) behind
# the xenstore writes of the project's own `xl-vscsi apply --dry-run --json`
# (temporary, until `xl-vscsi` attaches by itself): the guest sees the disk,
# an O_DIRECT write + read-back verifies, and fio baseline numbers (4k randread
# QD1 p50/p99, 4k randread QD16 IOPS, 1 MiB seq read MiB/s; 3 runs each) go
# to results-kernel-baseline.json. Then the vhost is detached and LIO cleaned.
# timeout: 1800
have xl-vscsi || pending "build/xl-vscsi not built"
W=naa.5001405012345678
RUNS=${RIG_FIO_RUNS:-3}
SECS=${RIG_FIO_SECS:-8}

ensure_guest || fail "no guest"
d=$(guest_domid)
lio-xen-pvscsi.sh delete ram0 || fail "LIO cleanup before the test"
lio-xen-pvscsi.sh create ram0 ram:256M $W 0 >/dev/null || fail "LIO ramdisk LUN"
{ cat /rig/guest/g1.cfg; echo "vscsi = [ '$W:0,0:0:0:0' ]"; } >/tmp/smoke.cfg
xl-vscsi apply --dry-run --json /tmp/smoke.cfg "$d" >/tmp/smoke.json 2>/tmp/smoke.err ||
	pending "xl-vscsi apply --dry-run --json failed: $(cat /tmp/smoke.err)"

# the vhost's directories, from the writes themselves (never typed here)
be=$(jq -r '[.[] | select(.path | endswith("/frontend-id"))][0].path | rtrimstr("/frontend-id")' /tmp/smoke.json)
fe=$(jq -r '[.[] | select(.path | endswith("/backend-id"))][0].path | rtrimstr("/backend-id")' /tmp/smoke.json)
[[ $be == /* && $fe == /* ]] || fail "no backend/frontend vhost in the writes"
t0=$(now)
xs_apply_json /tmp/smoke.json || fail "applying the writes failed"
if ! wait_xs "$be/state" 4 60 || ! wait_xs "$be/vscsi-devs/dev-0/state" 4 60; then
	xenstore-ls -fp "$be" | sed 's/^/    /'
	dmesg | grep -i scsiback | tail -5 | sed 's/^/    /'
	fail "vhost did not connect (backend state $(xenstore-read "$be/state"))"
fi
note "vhost connected in $(since "$t0") s; frontend state $(xenstore-read "$fe/state")"

out=$(guest_run -t 60 'for i in $(seq 1 300); do ls /sys/block | grep -q "^sd" && break; sleep 0.2; done; lsscsi; ls /sys/block | grep "^sd"') ||
	fail "guest: $out"
note "guest lsscsi: $(head -1 <<<"$out")"
grep -q 'LIO-ORG' <<<"$out" || fail "guest lsscsi shows no LIO disk: $out"
dev=/dev/$(tail -1 <<<"$out")

# O_DIRECT write, read back and compare (fio's own verify: crc32c per block)
out=$(guest_run -t 180 "fio --name=verify --filename=$dev --direct=1 --ioengine=libaio --rw=write --bs=64k --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse") ||
	fail "O_DIRECT write/verify failed: $(tail -3 <<<"$out")"
note "O_DIRECT write + read-back verify of 16 MiB passed"
out=$(guest_run "dd if=/dev/urandom of=/tmp/p bs=4096 count=256 2>/dev/null && dd if=/tmp/p of=$dev bs=4096 seek=8192 oflag=direct 2>/dev/null && dd if=$dev of=/tmp/q bs=4096 skip=8192 count=256 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q && echo same") ||
	fail "dd O_DIRECT round trip differs: $out"

# fio baseline: the kernel backend's numbers, for comparing the userspace backend
res=$(result_file results-kernel-baseline.json)
runs=/tmp/fio-runs.jsonl
: >"$runs"
fio_job() { # kind args...
	local kind=$1 t out
	shift
	t=$(now)
	out=$(guest_run -t $((SECS * 6 + 60)) "fio --name=$kind --filename=$dev --direct=1 --ioengine=libaio --runtime=$SECS --ramp_time=1 --time_based --output-format=json $*") ||
		fail "fio $kind failed: $(tail -3 <<<"$out")"
	jq -c --arg kind "$kind" --arg wall "$(since "$t")" '.jobs[0].read | {kind: $kind,
		iops: .iops, mib_s: (.bw / 1024), p50_us: (.clat_ns.percentile["50.000000"] / 1000),
		p99_us: (.clat_ns.percentile["99.000000"] / 1000), dom0_wall_s: ($wall | tonumber)}' \
		< <(sed -n '/^{/,$p' <<<"$out") >>"$runs" ||
		fail "fio $kind: no JSON result"
}
# one unrecorded warm-up: the first run after attach was 3x slower than the rest
guest_run -t 120 "fio --name=warmup --filename=$dev --direct=1 --ioengine=libaio --rw=randread --bs=4k --iodepth=16 --runtime=3 --time_based" >/dev/null ||
	fail "fio warm-up failed"
for r in $(seq 1 "$RUNS"); do
	fio_job randread-4k-qd1 --rw=randread --bs=4k --iodepth=1
	fio_job randread-4k-qd16 --rw=randread --bs=4k --iodepth=16
	fio_job seqread-1m-qd1 --rw=read --bs=1M --iodepth=1
	note "fio run $r/$RUNS done"
done
jq -s --arg lun "LIO rd_mcp 256 MiB via xen-scsiback" --arg secs "$SECS" \
	--arg kernel "$(uname -r)" --arg xen "$(xl info | awk '/^xen_version/{print $3}')" '
	def med: sort | .[(length / 2 | floor)];
	{backend: "kernel (xen-scsiback)", lun: $lun, kernel: $kernel, xen: $xen,
	 accel: "QEMU TCG (numbers measure the emulator: compare backends only within this rig)",
	 seconds_per_run: ($secs | tonumber), runs: .,
	 median: {
	   randread_4k_qd1_p50_us: ([.[] | select(.kind == "randread-4k-qd1") | .p50_us] | med),
	   randread_4k_qd1_p99_us: ([.[] | select(.kind == "randread-4k-qd1") | .p99_us] | med),
	   randread_4k_qd16_iops: ([.[] | select(.kind == "randread-4k-qd16") | .iops] | med),
	   seqread_1m_mib_s: ([.[] | select(.kind == "seqread-1m-qd1") | .mib_s] | med)}}' "$runs" >"$res" ||
	fail "could not write $res"
note "baseline: $(jq -c .median "$res")"

# detach (generic vhost removal: online=0 + Closing, wait for Closed), then clean up
xenstore-write "$be/online" 0 "$be/state" 5
wait_xs "$be/state" 6 30 || fail "vhost did not close"
xenstore-rm "$be"
xenstore-rm "$fe"
guest_run -t 30 'for i in $(seq 1 100); do ls /sys/block | grep -q "^sd" || exit 0; sleep 0.2; done; exit 1' ||
	fail "guest still has the disk after detach"
lio-xen-pvscsi.sh delete ram0 || fail "LIO cleanup"
