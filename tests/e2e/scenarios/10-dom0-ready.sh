# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# dom0-ready: Xen and dom0 are up (xenstored answers, xl talks to Xen), and the
# project's binaries run in dom0 with every shared library resolved.
# timeout: 600
pgrep -x xenstored >/dev/null || fail "xenstored is not running"
[[ $(xenstore-read /local/domain/0/domid) == 0 ]] || fail "xenstore has no /local/domain/0/domid"
info=$(xl info) || fail "xl info failed"
grep -Eq '^xen_version +: 4\.17' <<<"$info" || fail "xl info: unexpected xen_version: $(grep xen_version <<<"$info")"
note "$(grep -E '^(xen_version|nr_cpus|total_memory|free_memory)' <<<"$info" | tr -s ' ' | tr '\n' ';')"
xl list | grep -q '^Domain-0 ' || fail "xl list has no Domain-0"
for d in evtchn gntdev privcmd xenbus; do
	[[ -e /dev/xen/$d ]] || fail "/dev/xen/$d missing"
done

# every binary the tree builds must be in /rig/bin, run, and resolve its libraries
while read -r b; do
	[[ -n $b ]] || continue
	[[ -e /rig/bin/$b ]] || fail "project binary $b missing from /rig/bin (make build lib)"
done </rig/manifest
n=0
for f in /rig/bin/*; do
	if [[ ! -f $f ]] || ! head -c4 "$f" | grep -q ELF; then continue; fi
	out=$(ldd "$f" 2>&1)
	if grep -Eq 'not a dynamic executable|statically linked' <<<"$out"; then
		note "$(basename "$f"): static"
		n=$((n + 1))
		continue
	fi
	if grep -q 'not found' <<<"$out" || ! grep -q '=>' <<<"$out"; then
		fail "ldd $(basename "$f"): $(grep 'not found' <<<"$out" | tr -s ' \t' ' ' | tr '\n' ';')"
	fi
	note "$(basename "$f"): $(grep -o 'libxen[a-z]*\.so[.0-9]*' <<<"$out" | sort -u | tr '\n' ' ')"
	n=$((n + 1))
done
note "$n project ELF files, all libraries resolved"
if [[ -x /rig/bin/xl-vscsi ]]; then
	out=$(xl-vscsi help 2>&1) || fail "xl-vscsi help failed: $(tail -1 <<<"$out")"
	[[ -n $out ]] || fail "xl-vscsi help printed nothing"
	note "xl-vscsi help: $(head -1 <<<"$out")"
fi
