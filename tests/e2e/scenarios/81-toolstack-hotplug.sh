# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# toolstack-hotplug: on the guest toolstack-create made, `xl-vscsi scsi-attach`
# hot-adds an LIO ramdisk LUN to an existing vhost (backend state 7 pass) and
# `scsi-detach` removes it again; `scsi-list` (text and --json) and the
# guest's lsscsi are checked at each step.
# timeout: 600
have xl-vscsi || pending "build/xl-vscsi not built"
# shellcheck source=tests/e2e/dom0/helpers-toolstack.sh
. /rig/helpers-toolstack.sh
W3=naa.50014050000000a3
guest_running || fail "no guest from toolstack-create"
d=$(guest_domid)
n0=$(xl-vscsi scsi-list --json g1 | jq '[.[].devs[]] | length')
[[ $n0 == 2 ]] || fail "expected the 2 devices of toolstack-create, scsi-list has $n0"
lio-xen-pvscsi.sh delete ts-ram >/dev/null || fail "LIO cleanup"
out=$(lio-xen-pvscsi.sh create ts-ram ram:32M $W3 0) || fail "LIO ramdisk: $out"

# hot-add into the vhost serving vdev host 1
v1=$(ts_vhost_of g1 1) || fail "no vhost serves vdev host 1"
t0=$(now)
out=$(xl-vscsi scsi-attach g1 $W3:0 1:0:0:1 2>&1) || fail "scsi-attach: $out"
note "hot-add took $(since "$t0") s"
js=$(xl-vscsi scsi-list --json g1)
jq -e --argjson v "$v1" --arg p "$W3:0" '.[] | select(.vhost == $v) | .backend_state == 4 and (.devs | length == 2) and
	any(.devs[]; .p_dev == $p and .v_dev == "1:0:0:1" and .backend_state == 4 and .frontend_state == 4)' <<<"$js" >/dev/null ||
	fail "scsi-list --json after hot-add: $js"
txt=$(xl-vscsi scsi-list g1)
note "scsi-list after hot-add:"
# shellcheck disable=SC2001 # indent every line
sed 's/^/    /' <<<"$txt"
grep -Eq "^$d +$v1 +(vscsi +)?1 +4 +4 +dev-[0-9]+ +1:0:0:1 +4 +4 +$W3:0 " <<<"$txt" || fail "scsi-list text lacks the hot-added row: $txt"
ts_wait_disks 3 60 || fail "guest did not gain the hot-added disk"
note "guest: $(ts_scsi_disks | tr '\n' ';')"
out=$(guest_run 'dev=$(for b in /sys/block/sd*; do [ $(cat $b/size) = 65536 ] && echo /dev/${b##*/}; done); dd if=/dev/urandom of=/tmp/p bs=4096 count=64 2>/dev/null && dd if=/tmp/p of=$dev oflag=direct bs=4096 2>/dev/null && dd if=$dev of=/tmp/q bs=4096 count=64 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q && echo ok $dev') ||
	fail "I/O on the hot-added disk: $out"

# an attach of a v-dev already in use is refused and changes nothing
before=$(ts_xs_snap "$d")
out=$(xl-vscsi scsi-attach g1 $W3:0 1:0:0:1 2>&1) && fail "attaching 1:0:0:1 twice succeeded"
note "second attach of 1:0:0:1: $out"
[[ "$(ts_xs_snap "$d")" == "$before" ]] || fail "failed attach changed xenstore: $(diff <(echo "$before") <(ts_xs_snap "$d") | head)"

# hot-remove
t0=$(now)
out=$(xl-vscsi scsi-detach g1 1:0:0:1 2>&1) || fail "scsi-detach: $out"
note "hot-remove took $(since "$t0") s"
js=$(xl-vscsi scsi-list --json g1)
jq -e --argjson v "$v1" --arg p "$W3:0" '.[] | select(.vhost == $v) | .backend_state == 4 and (.devs | length == 1) and
	all(.devs[]; .p_dev != $p)' <<<"$js" >/dev/null || fail "scsi-list --json after detach: $js"
txt=$(xl-vscsi scsi-list g1)
grep -q "$W3" <<<"$txt" && fail "scsi-list text still shows $W3 after detach: $txt"
[[ $(grep -c "^$d " <<<"$txt") == 2 ]] || fail "scsi-list text after detach: $txt"
ts_wait_disks 2 60 || fail "guest still has the detached disk"
out=$(xl-vscsi scsi-detach g1 1:0:0:1 2>&1) && fail "detaching 1:0:0:1 twice succeeded"
note "second detach: $out"
lio-xen-pvscsi.sh delete ts-ram || fail "LIO delete ts-ram (still held?)"
