# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# guest-boots: a PV guest with the test userland boots, its agent answers,
# and xen-scsifront is loaded.
# timeout: 900
guest_start || fail "guest did not start"
out=$(guest_run 'echo hello from $(uname -r)') || fail "guest_run failed: $out"
[[ $out == "hello from $(uname -r)" ]] || fail "guest_run echoed '$out'"
guest_run 'test -d /sys/module/xen_scsifront' || fail "xen-scsifront is not loaded in the guest"
# exit status and multi-chunk output travel back intact
guest_run 'exit 3'
rc=$?
[[ $rc == 3 ]] || fail "guest_run returned $rc for 'exit 3'"
out=$(guest_run 'seq 1 3000') || fail "guest_run seq failed"
[[ $(wc -l <<<"$out") == 3000 && $(tail -1 <<<"$out") == 3000 ]] ||
	fail "long output came back wrong ($(wc -l <<<"$out") lines, last '$(tail -1 <<<"$out")')"
out=$(guest_run 'fio --version && lsscsi --version && sg_inq --version && mkfs.ext4 -V' 2>&1) ||
	fail "guest userland incomplete: $out"
note "guest tools: $(tr '\n' ' ' <<<"$out" | cut -c1-200)"
note "guest memory: $(guest_run 'grep -E "MemTotal|MemAvailable" /proc/meminfo | tr -s " " | tr "\n" " "')"
