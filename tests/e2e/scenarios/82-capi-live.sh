# shellcheck shell=bash disable=SC2016
# capi-live: libgovscsi.so through its C header (tests/e2e/capi/capi-live.c,
# compiled on the host, run in dom0) against the real xenstored, xen-scsiback
# and the guest's xen-scsifront: vscsi_attach of an LIO ramdisk on a new vhost,
# vscsi_list, vscsi_detach, vscsi_destroy_vhost; the guest's lsscsi gains and
# loses the disk; then the asynchronous API with a device-state subscription
# (capi-live cycle: completion callbacks, the real peers' state changes as
# events); the domain's vscsi xenstore nodes end as they began.
# timeout: 400
have capi-live || pending "capi-live not staged (tests/e2e/capi/capi-live.c)"
# shellcheck source=tests/e2e/dom0/helpers-toolstack.sh
. /rig/helpers-toolstack.sh
W4=naa.50014050000000a4
guest_running || ensure_guest || fail "no guest"
d=$(guest_domid)
n0=$(guest_run 'lsscsi | grep -cw disk')
lio-xen-pvscsi.sh delete ts-capi >/dev/null || fail "LIO cleanup"
out=$(lio-xen-pvscsi.sh create ts-capi ram:16M $W4 0) || fail "LIO ramdisk: $out"
before=$(ts_xs_snap "$d")

t0=$(now)
out=$(capi-live attach g1 $W4:0 2:0:0:0 2>&1) || fail "vscsi_attach: $out"
note "vscsi_attach took $(since "$t0") s"
js=$(capi-live list g1) || fail "vscsi_list: $js"
v=$(jq -e --arg p "$W4:0" '.[] | select(any(.devs[]; .p_dev == $p and .v_dev == "2:0:0:0" and .backend_state == 4 and .frontend_state == 4)) | .vhost' <<<"$js") ||
	fail "vscsi_list does not show $W4:0 connected: $js"
[[ "$(xl-vscsi scsi-list --json g1 | jq -c .)" == "$(jq -c . <<<"$js")" ]] || fail "vscsi_list and xl-vscsi scsi-list --json differ"
ts_wait_disks $((n0 + 1)) 60 || fail "guest did not gain the disk attached through the C API"
note "guest sees it: $(ts_scsi_disks | tr '\n' ';')"

out=$(capi-live detach g1 2:0:0:0 2>&1) || fail "vscsi_detach: $out"
ts_wait_disks "$n0" 60 || fail "guest still has the disk after vscsi_detach"
js=$(capi-live list g1)
jq -e --argjson v "$v" '.[] | select(.vhost == $v) | .backend_state == 4 and (.devs | length == 0)' <<<"$js" >/dev/null ||
	fail "after vscsi_detach the vhost should stay, connected and empty (P13): $js"
out=$(capi-live detach g1 2:0:0:0 2>&1) && fail "second vscsi_detach succeeded"
grep -q 'rc -2:' <<<"$out" || fail "second vscsi_detach: want -ENOENT, got: $out"
# The asynchronous API (version 3) on the same vhost: a subscription sees the
# real xen-scsiback and xen-scsifront take the device up and down, and each
# operation completes through its callback on the callback thread.
t0=$(now)
out=$(capi-live cycle g1 $W4:0 2:0:0:0 2>&1) || fail "capi-live cycle: $out"
note "async attach + detach with events in $(since "$t0") s: $(grep -c '^event' <<<"$out") events"
{ grep -qx 'done attach rc 0' <<<"$out" && grep -qx 'done detach rc 0' <<<"$out"; } ||
	fail "completion callbacks: $(grep '^done' <<<"$out")"
grep -Eq '^event type 2 .* side frontend [0-9]->4 vdev 2:0:0:0$' <<<"$out" ||
	fail "no event of the guest's xen-scsifront connecting the device: $out"
grep -Eq '^event type 2 .* side backend [0-9]->0 vdev 2:0:0:0$' <<<"$out" ||
	fail "no event of the device's removal: $out"
grep -qx 'pointers 0' <<<"$out" || fail "go-pointer entries left: $(grep '^pointers' <<<"$out")"
ts_wait_disks "$n0" 60 || fail "guest still has the disk after the asynchronous detach"
grep '^event' <<<"$out" | sed 's/^/    /'
out=$(capi-live destroy g1 "$v" 2>&1) || fail "vscsi_destroy_vhost: $out"
[[ "$(ts_xs_snap "$d")" == "$before" ]] || fail "xenstore after destroy differs: $(diff <(echo "$before") <(ts_xs_snap "$d") | head)"
out=$(capi-live attach no-such-guest $W4:0 2:0:0:0 2>&1) && fail "attach to a missing domain succeeded"
grep -q 'rc -3:.*no-such-guest' <<<"$out" || fail "unknown domain: want -ESRCH naming it, got: $out"
lio-xen-pvscsi.sh delete ts-capi || fail "LIO delete ts-capi (still held?)"
