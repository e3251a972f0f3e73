# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# xenlibs: tests/xenlibs (real gnttab/evtchn/xenstore through libxlgo in dom0)
# against a running guest. Pending until tests/xenlibs exists in the tree.
# timeout: 600
[[ -x /rig/tests/xenlibs ]] || pending "tests/xenlibs not in the tree yet"
ensure_guest || fail "no guest"
d=$(guest_domid)
out=$(XENLIBS_GUEST_DOMID=$d /rig/tests/xenlibs 2>&1)
rc=$?
echo "$out" | tail -n 40 | sed 's/^/    /'
((rc == 0)) || fail "tests/xenlibs exited $rc: $(tail -1 <<<"$out")"
