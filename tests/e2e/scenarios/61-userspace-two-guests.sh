# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# userspace-two-guests: one vscsi-backend serves two guests at once (g1 and
# g2, 512 MiB each next to dom0's 1 GiB), each with its own LUN (a file LUN
# and a RAM LUN); fio with crc32c verify runs in both guests at the same
# time; the stats socket shows both domains' LUNs busy and error-free.
# timeout: 1800
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
trap us_cleanup EXIT
have vscsi-backend || pending "build/vscsi-backend not built"
type=$(us_backend_type)
[[ -n $type ]] || pending "xl-vscsi apply --flavour userspace --dry-run --json gives no backend vhost"
us_no_kernel_backend || fail "cannot unload xen-scsiback"
free=$(xl info | awk '/^free_memory/{print $3}')
note "Xen free memory before the guests: ${free} MiB"
ensure_guest || fail "no guest g1"
if ! guest_running g2; then
	us_guest_start g2 || fail "second guest g2 did not start (free memory $(xl info | awk '/^free_memory/{print $3}') MiB)"
fi
d1=$(guest_domid g1) d2=$(guest_domid g2)
note "guests: g1 = $d1, g2 = $d2; Xen free memory now $(xl info | awk '/^free_memory/{print $3}') MiB"

mkdir -p "$US_DIR"
img=$US_DIR/g1.img
rm -f "$img"
truncate -s 128M "$img" || fail "cannot create $img"
us_daemon_start "$type" || fail "vscsi-backend did not start"
out=$(us_attach g1 "file:$img" 0:0:0:0 2>&1) || fail "scsi-attach g1: $out"
out=$(us_attach g2 ram:128M 0:0:0:0 2>&1) || fail "scsi-attach g2: $out"
dev1=$(us_guest_dev GOVSCSI g1) || fail "g1 shows no GOVSCSI disk"
dev2=$(us_guest_dev GOVSCSI g2) || fail "g2 shows no GOVSCSI disk"
note "g1 sees $dev1, g2 sees $dev2"

# fio in both guests at once: each guest_run in the background, results in files
fio='fio --name=both --direct=1 --ioengine=libaio --rw=randrw --bs=16k --iodepth=8 --size=32M --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=json'
(GUEST_NAME=g1 guest_run -t 600 "$fio --filename=$dev1" >/tmp/fio-g1.out 2>&1; echo $? >/tmp/fio-g1.rc) &
p1=$!
(GUEST_NAME=g2 guest_run -t 600 "$fio --filename=$dev2" >/tmp/fio-g2.out 2>&1; echo $? >/tmp/fio-g2.rc) &
p2=$!
# while both run, the daemon must show both LUNs in flight at some point
both=0
for _ in $(seq 1 600); do
	kill -0 $p1 2>/dev/null || kill -0 $p2 2>/dev/null || break
	if st=$(us_stats) && jq -e '[.luns[] | select(.commands > 0)] | length == 2' <<<"$st" >/dev/null; then
		both=1
	fi
	sleep 0.5
done
wait $p1 $p2
for g in g1 g2; do
	[[ $(cat /tmp/fio-$g.rc) == 0 ]] || fail "fio in $g: rc $(cat /tmp/fio-$g.rc): $(tail -5 /tmp/fio-$g.out)"
	e=$(sed -n '/^{/,$p' /tmp/fio-$g.out | jq '.jobs[0].error') || fail "fio in $g: no JSON"
	[[ $e == 0 ]] || fail "fio in $g: error $e"
	note "$g: fio randrw 32 MiB verified; $(sed -n '/^{/,$p' /tmp/fio-$g.out | jq -c '.jobs[0] | {read_iops: .read.iops, write_iops: .write.iops}')"
done
((both)) || note "both LUNs were never seen busy in one stats snapshot (timing), checking totals"
st=$(us_stats) || fail "stats socket"
jq -e --argjson a "$d1" --argjson b "$d2" '[.luns[] | select(.domid == $a or .domid == $b) | select(.commands > 1000 and .errors == 0)] | length == 2' <<<"$st" >/dev/null ||
	fail "stats: want both domains' LUNs with >1000 commands, no errors: $(jq -c '[.luns[] | {domid, pdev, commands, errors}]' <<<"$st")"
note "stats: $(jq -c '[.luns[] | {domid, pdev, commands, errors}]' <<<"$st")"

# detach both, stop the daemon; g2 goes away (memory for the next scenarios)
us_detach g1 0:0:0:0 >/dev/null 2>&1 || fail "scsi-detach g1"
us_detach g2 0:0:0:0 >/dev/null 2>&1 || fail "scsi-detach g2"
us_daemon_stop || fail "daemon did not stop cleanly"
xl destroy g2 || fail "xl destroy g2"
xl destroy g1 || fail "xl destroy g1"
rm -f "$img"
