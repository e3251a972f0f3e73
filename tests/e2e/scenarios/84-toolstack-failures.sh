# shellcheck shell=bash disable=SC2016
# toolstack-failures: (1) a p-dev xen-scsiback cannot find (an LIO port that
# does not exist): scsi-attach fails with an error naming it (device state 6)
# and xenstore is exactly as before (xenstore-ls -fp of every vscsi node of
# the domain); the same for a hot-add into an existing vhost. (2) a guest
# without xen-scsifront (rmmod'ed): attach with --timeout 15s times out with
# an error that says what it waited for, and leaves nothing behind.
# Runs after the other toolstack scenarios on the guest: it destroys the
# guest's vhosts (destroy-vhost) and unloads its xen-scsifront
# (toolstack-destroy makes a fresh guest).
# timeout: 400
have xl-vscsi || pending "build/xl-vscsi not built"
# shellcheck source=tests/e2e/dom0/helpers-toolstack.sh
. /rig/helpers-toolstack.sh
BAD=naa.5001405000000bad
W5=naa.50014050000000a5
guest_running || ensure_guest || fail "no guest"
d=$(guest_domid)

# (1a) unfindable p-dev on a new vhost
before=$(ts_xs_snap "$d")
t0=$(now)
out=$(xl-vscsi scsi-attach --timeout 30s g1 $BAD:0 5:0:0:0 2>&1) && fail "attach of $BAD:0 succeeded"
note "unfindable p-dev, new vhost ($(since "$t0") s): $out"
grep -q "$BAD:0" <<<"$out" || fail "error does not name the p-dev: $out"
grep -Eiq 'state 6|refused' <<<"$out" || fail "error does not say the backend refused it (state 6): $out"
after=$(ts_xs_snap "$d")
[[ $after == "$before" ]] || fail "half-written nodes left: $(diff <(echo "$before") <(echo "$after") | head)"

# (1b) the same as a hot-add into the vhost serving vdev host 0
if ts_vhost_of g1 0 >/dev/null; then
	out=$(xl-vscsi scsi-attach --timeout 30s g1 $BAD:0 0:0:0:7 2>&1) && fail "hot-add of $BAD:0 succeeded"
	note "unfindable p-dev, hot-add: $out"
	grep -q "$BAD:0" <<<"$out" || fail "hot-add error does not name the p-dev: $out"
	after=$(ts_xs_snap "$d")
	# ids are never reused (P29): only the vhost's dev-id counter may have moved
	diff <(grep -v next_vscsidev_id <<<"$before") <(grep -v next_vscsidev_id <<<"$after") >/dev/null ||
		fail "hot-add failure left nodes: $(diff <(echo "$before") <(echo "$after") | head)"
	ts_wait_disks "$(guest_run 'lsscsi | grep -cw disk')" 5 >/dev/null || true
fi

# (2) no xen-scsifront in the guest
lio-xen-pvscsi.sh delete ts-nofe >/dev/null || fail "LIO cleanup"
out=$(lio-xen-pvscsi.sh create ts-nofe ram:8M $W5 0) || fail "LIO ramdisk: $out"
# the module stays busy while the guest has vscsi hosts: remove every vhost
# first (xl-vscsi destroy-vhost, which this also proves on the live guest)
for v in $(xl-vscsi scsi-list --json g1 | jq '.[].vhost'); do
	out=$(xl-vscsi destroy-vhost g1 "$v" 2>&1) || fail "destroy-vhost $v: $out"
done
[[ $(xl-vscsi scsi-list --json g1 | jq length) == 0 ]] || fail "vhosts left after destroy-vhost: $(xl-vscsi scsi-list g1)"
ts_wait_disks 0 60 >/dev/null || fail "guest still has disks after destroy-vhost"
rmmod_fe() { guest_run 'rmmod xen_scsifront 2>&1; test ! -d /sys/module/xen_scsifront'; }
wait_for 30 rmmod_fe || fail "rmmod xen-scsifront in the guest: $(guest_run 'rmmod xen_scsifront 2>&1; lsmod')"
# the existing vhosts close when their frontend goes: wait until xenstore is still
prev=""
settle() { local s; s=$(ts_xs_snap "$d"); [[ $s == "$prev" ]] && return 0; prev=$s; sleep 1; return 1; }
wait_for 60 settle || fail "xenstore did not settle after rmmod"
before=$(ts_xs_snap "$d")
t0=$(now)
out=$(xl-vscsi scsi-attach --timeout 15s g1 $W5:0 6:0:0:0 2>&1) && fail "attach without xen-scsifront succeeded"
took=$(since "$t0")
note "no frontend ($took s): $out"
grep -qi 'xen-scsifront' <<<"$out" || fail "error gives no hint about xen-scsifront: $out"
grep -Eqi 'timeout|timed out' <<<"$out" || fail "error does not say it timed out: $out"
awk -v t="$took" 'BEGIN{exit !(t >= 14 && t < 120)}' || fail "attach took $took s with --timeout 15s"
after=$(ts_xs_snap "$d")
[[ $after == "$before" ]] || fail "timed-out attach left nodes: $(diff <(echo "$before") <(echo "$after") | head)"
wait_for 30 lio-xen-pvscsi.sh delete ts-nofe || fail "LIO delete ts-nofe (still held by xen-scsiback?)"
