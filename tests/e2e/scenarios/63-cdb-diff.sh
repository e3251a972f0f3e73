# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# cdb-diff: the differential CDB check. One guest sees a LIO rd_mcp LUN
# (xen-scsiback) and one of our RAM LUNs (vscsi-backend), both 64 MiB with
# 512-byte blocks. The list of `cdbdiff list` (every opcode of our table
# with valid fields, boundary LBAs and lengths, reserved bits, bad page
# codes, short allocation lengths, the reservation commands, and a scan of
# all 256 opcodes) goes to both through sg_raw; `cdbdiff compare` prints
# every difference in status, sense key and ASC/ASCQ. A difference that is
# not listed as intended (tests/cdbdiff/intended.go = docs/backend.md,
# "Differences from LIO") fails the scenario.
# Results: cdb-diff.txt (the report), cdb-diff-lio.txt, cdb-diff-ours.txt.
# timeout: 900
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
W=naa.500140501234567a
cleanup() {
	xl-vscsi scsi-detach --timeout 60s "$GUEST_NAME" 1:0:0:0 >/dev/null 2>&1
	xl-vscsi destroy-vhost "$GUEST_NAME" 1 >/dev/null 2>&1
	lio-xen-pvscsi.sh delete cdbdiff0 >/dev/null 2>&1
	us_cleanup
}
trap cleanup EXIT
have vscsi-backend || pending "build/vscsi-backend not built"
[[ -x /rig/tests/cdbdiff ]] || pending "tests/cdbdiff not built"
type=$(us_backend_type)
[[ $type != vscsi ]] || pending "our backend type is vscsi: xen-scsiback would take our vhost too (P3)"
us_no_kernel_backend || fail "cannot unload xen-scsiback"
ensure_guest || fail "no guest"
g=$GUEST_NAME

us_daemon_start "$type" || fail "vscsi-backend did not start"
out=$(us_attach "$g" ram:64M 0:0:0:0 2>&1) || fail "scsi-attach ram:64M: $out"
lio-xen-pvscsi.sh create cdbdiff0 ram:64M $W 0 >/dev/null || fail "LIO ramdisk LUN"
out=$(xl-vscsi scsi-attach --flavour kernel --timeout 60s "$g" "$W:0" 1:0:0:0 2>&1) ||
	fail "scsi-attach (kernel) $W:0: $out"
us_guest_dev GOVSCSI >/dev/null || fail "guest shows no GOVSCSI disk"
us_guest_dev LIO-ORG >/dev/null || fail "guest shows no LIO disk"
sg_us=$(us_guest_sg GOVSCSI) || fail "no sg node for the GOVSCSI disk"
sg_k=$(us_guest_sg LIO-ORG) || fail "no sg node for the LIO disk"
note "ours: $sg_us, LIO: $sg_k"
out=$(guest_run "sg_readcap -l $sg_us; sg_readcap -l $sg_k") || fail "sg_readcap: $out"
(($(grep -c 'Device size: 67108864 bytes' <<<"$out") == 2)) || fail "the LUNs are not both 64 MiB: $out"
(($(grep -c 'Logical block length=512 bytes' <<<"$out") == 2)) || fail "the LUNs do not both have 512-byte blocks: $out"

# ship the list and the runner (guest_run commands stay well under xenstore's 4 KiB)
/rig/tests/cdbdiff list -blocks 131072 -bs 512 >/tmp/cdbdiff.list || fail "cdbdiff list"
/rig/tests/cdbdiff runner >/tmp/cdbdiff.sh || fail "cdbdiff runner"
ship() { # LOCAL REMOTE
	local chunk='' line
	guest_run ": >$2" >/dev/null || return 1
	while IFS= read -r line || [[ -n $line ]]; do
		chunk+=$line$'\n'
		if ((${#chunk} > 2500)); then
			guest_run "cat >>$2 <<'CDBDIFF_EOF'
${chunk%$'\n'}
CDBDIFF_EOF" >/dev/null || return 1
			chunk=''
		fi
	done <"$1"
	if [[ -n $chunk ]]; then
		guest_run "cat >>$2 <<'CDBDIFF_EOF'
${chunk%$'\n'}
CDBDIFF_EOF" >/dev/null || return 1
	fi
	[[ $(guest_run "md5sum <$2") == "$(md5sum <"$1")" ]]
}
t0=$(now)
ship /tmp/cdbdiff.list /tmp/cdbdiff.list || fail "could not copy the case list to the guest"
ship /tmp/cdbdiff.sh /tmp/cdbdiff.sh || fail "could not copy the runner to the guest"
n=$(wc -l </tmp/cdbdiff.list)
note "$n cases shipped in $(since "$t0") s"

# clear the unit attentions the attach left (both LUNs), then the list on each
guest_run "sg_turs -n 3 $sg_us; sg_turs -n 3 $sg_k" >/dev/null 2>&1
for side in lio ours; do
	dev=$sg_k
	[[ $side == ours ]] && dev=$sg_us
	t0=$(now)
	out=$(guest_run -t 600 "sh /tmp/cdbdiff.sh $dev /tmp/cdbdiff.list >/tmp/res-$side.txt; wc -l </tmp/res-$side.txt") ||
		fail "runner on $side ($dev): $out"
	[[ $out == "$n" ]] || fail "runner on $side gave $out results for $n cases"
	res=$(result_file "cdb-diff-$side.txt")
	guest_run "cat /tmp/res-$side.txt" >"$res" || fail "could not fetch the $side results"
	note "$side: $n cases in $(since "$t0") s"
done
report=$(result_file cdb-diff.txt)
/rig/tests/cdbdiff compare -all -blocks 131072 -bs 512 "$(result_file cdb-diff-lio.txt)" "$(result_file cdb-diff-ours.txt)" >"$report"
rc=$?
sed -n '/^class/,$p' "$report" | sed 's/^/    /'
grep -E '^(DIFF|MISSING)' "$report" | head -40 | sed 's/^/    /'
((rc == 0)) || fail "$(tail -1 "$report")"
