#!/bin/bash
# Run the rig's scenarios in dom0, in file-name order, each in its own bash
# (so `exit`, `set -e` or a crash ends only that scenario) under a timeout.
#
#   run-scenarios.sh [NAME...]   only these (default: rig.only= on the kernel
#                                command line, ':'-separated, else all)
#
# A scenario file /rig/scenarios/NN-name.sh is sourced after /rig/helpers.sh.
# Its result: exit 0 (the end of the file) = PASS, `fail why` = FAIL,
# `pending why` = PENDING; timeout = FAIL. A header line "# timeout: S"
# overrides the default of 300 s. Results go to the console as
# "RIG[t] PASS: name (s)" / "RIG[t] FAIL: name: why" / "RIG[t] PENDING: name: why".
# shellcheck source=tests/e2e/dom0/helpers.sh
. /rig/helpers.sh
mkdir -p /run/rig "$RIG_OUT"

only=("$@")
if ((${#only[@]} == 0)); then
	sel=$(sed -n 's/.*rig\.only=\([^ ]*\).*/\1/p' /proc/cmdline)
	[[ -n $sel ]] && IFS=: read -r -a only <<<"$sel"
fi
selected() {
	((${#only[@]} == 0)) && return 0
	local o
	for o in "${only[@]}"; do [[ $o == "$1" ]] && return 0; done
	return 1
}

declare -i npass=0 nfail=0 npend=0
for f in /rig/scenarios/*.sh; do
	name=$(basename "$f" .sh)
	name=${name#[0-9][0-9]-}
	selected "$name" || continue
	limit=$(sed -n 's/^# timeout: *\([0-9]*\).*/\1/p' "$f" | head -1)
	limit=${limit:-300}
	reason=/run/rig/reason.$name
	rm -f "$reason"
	rig_log "SCENARIO $name (timeout ${limit} s)"
	t0=$(now)
	# shellcheck disable=SC2016 # $1 is expanded by the inner bash
	RIG_SCENARIO=$name RIG_REASON=$reason timeout -k 10 "$limit" \
		bash -c 'exec 9>"$2"; BASH_XTRACEFD=9; . /rig/helpers.sh; set -x; . "$1"' scenario "$f" "$RIG_OUT/trace-$name.txt"
	rc=$?
	took=$(since "$t0")
	case $rc in
	0) rig_log "PASS: $name ($took s)"; npass+=1 ;;
	77) rig_log "PENDING: $name: $(cat "$reason" 2>/dev/null)"; npend+=1 ;;
	124 | 137) rig_log "FAIL: $name: timeout after ${limit} s"; nfail+=1 ;;
	*) rig_log "FAIL: $name: $(cat "$reason" 2>/dev/null || echo "exit status $rc") ($took s)"; nfail+=1 ;;
	esac
done
# dom0-health: no dom0 process may have crashed meanwhile (a crash in a
# helper can otherwise hide behind a scenario that happened to pass)
if selected dom0-health; then
	crashes=$(dmesg | grep -E 'segfault at|general protection|traps:|Out of memory|potentially unexpected fatal signal' | tail -5)
	if [[ -n $crashes ]]; then
		rig_log "FAIL: dom0-health: $(tr '\n' ';' <<<"$crashes")"
		nfail+=1
	else
		rig_log "PASS: dom0-health (no crashed processes in dom0)"
		npass+=1
	fi
fi
rig_log "scenarios: $npass passed, $nfail failed, $npend pending"
((nfail == 0))
