# shellcheck shell=bash
# Helpers for dom0-side scenarios (tests/e2e/scenarios/*.sh). Sourced by
# /rig/init.sh, /rig/run-scenarios.sh and every scenario, and by the
# interactive shell (rig.sh shell).
#
# Results:   fail "why"        end the scenario: FAIL: <name>: why
#            pending "why"     end the scenario: PENDING: <name>: why (not a failure)
#            note "text"       a line in the log
#            (reaching the end of the file means PASS)
# Waiting:   wait_xs PATH VALUE TIMEOUT_S     poll xenstore until PATH == VALUE
#            wait_for TIMEOUT_S CMD...        poll until CMD succeeds
# Guest:     guest_start [NAME]               (re)create the test guest, wait for its agent
#            guest_domid [NAME]               its domid
#            guest_run [-t TIMEOUT_S] CMD      run shell CMD in the guest; prints its
#                                             output, returns its exit status
#            guest_console [NAME]             path of its console log in dom0
#            wait_console PATTERN TIMEOUT_S   poll the guest console log for an ERE
# Toolstack: xs_apply FILE                    apply `<path> = "<value>"` lines in one
#                                             transaction (`xl-vscsi apply --dry-run`)
#            xs_apply_json FILE               apply `xl-vscsi apply --dry-run --json`:
#                                             dirs + perms first, nodes in one transaction
# Results:   result_file NAME                 a file the host gets back in $RIG_LOGS
# Daemons:   aa_start LOG CMD...              start vscsi-autoattach (CMD) in the background,
#                                             appending to LOG; wait until it watches
#            aa_stop                          SIGTERM it; fail unless it exits 0
export PATH=/rig/bin:/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Values that may start with "-" are written after "--": the xenstore tools'
# getopt would take them for options. (Not POSIXLY_CORRECT: in the environment
# it would also put every bash, scenarios and the shell, in POSIX mode.)
RIG_OUT=/run/rig/out
GUEST_NAME=${GUEST_NAME:-g1}

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.1f", a-b}'; }
# rig_log MSG: a console line the host's harness watches ("RIG[uptime] ...")
rig_log() { echo "RIG[$(cut -d' ' -f1 /proc/uptime)] $*"; }
note() { echo "  ${RIG_SCENARIO:+$RIG_SCENARIO: }$*"; }

fail() {
	echo "$*" >"${RIG_REASON:-/dev/null}"
	note "FAIL: $*"
	exit 1
}
pending() {
	echo "$*" >"${RIG_REASON:-/dev/null}"
	exit 77
}

wait_for() {
	local timeout=$1 t0
	shift
	t0=$SECONDS
	until "$@" >/dev/null 2>&1; do
		((SECONDS - t0 >= timeout)) && return 1
		sleep 0.2
	done
}

# wait_xs PATH VALUE TIMEOUT_S: 0 once PATH reads VALUE; on timeout prints what it saw.
wait_xs() {
	local path=$1 want=$2 timeout=$3 t0=$SECONDS v
	while :; do
		v=$(xenstore-read "$path" 2>/dev/null) || v="<absent>"
		[[ $v == "$want" ]] && return 0
		if ((SECONDS - t0 >= timeout)); then
			note "timeout after ${timeout} s: $path is '$v', wanted '$want'"
			return 1
		fi
		sleep 0.2
	done
}

guest_domid() { xl domid "${1:-$GUEST_NAME}" 2>/dev/null; }
guest_console() { echo "/var/log/xen/console/guest-${1:-$GUEST_NAME}.log"; }

# wait_console PATTERN TIMEOUT_S: 0 once the guest's console log (kernel
# messages, agent echo) matches the extended regex PATTERN.
wait_console() {
	wait_for "$2" grep -Eq -- "$1" "$(guest_console)"
}

# guest_start [NAME]: a fresh guest from /rig/guest/NAME.cfg, created paused so
# rig/ (the agent's xenstore directory, owned by the guest) exists before it runs.
# shellcheck disable=SC2120 # NAME is optional
guest_start() {
	local name=${1:-$GUEST_NAME} d t0
	t0=$(now)
	if guest_domid "$name" >/dev/null; then xl destroy "$name" || return 1; fi
	rm -f "$(guest_console "$name")"
	xl create -p "/rig/guest/$name.cfg" >/dev/null || { note "xl create failed"; return 1; }
	d=$(guest_domid "$name") || return 1
	xenstore-write "/local/domain/$d/rig" "" &&
		xenstore-chmod "/local/domain/$d/rig" "n$d" || return 1
	xl unpause "$name" || return 1
	if ! wait_xs "/local/domain/$d/rig/ready" 1 300; then
		note "guest agent not ready; console tail:"
		tail -n 20 "$(guest_console "$name")" | sed 's/^/    /'
		return 1
	fi
	echo 0 >"/run/rig/$name.seq"
	note "guest $name (domid $d) ready in $(since "$t0") s"
}

# guest_running [NAME]: 0 if the guest exists and its agent answered.
# shellcheck disable=SC2120 # NAME is optional
guest_running() {
	local d
	d=$(guest_domid "${1:-$GUEST_NAME}") && [[ $(xenstore-read "/local/domain/$d/rig/ready" 2>/dev/null) == 1 ]] &&
		[[ -f /run/rig/${1:-$GUEST_NAME}.seq ]]
}

# guest_run [-t TIMEOUT_S] CMD: run CMD (a shell snippet) in the guest via its agent.
# Prints the command's output (stdout+stderr) and returns its exit status; 124
# on timeout (the guest is then marked unusable: the next guest_start replaces it).
guest_run() {
	local timeout=120 name=$GUEST_NAME d n base k rc
	if [[ $1 == -t ]]; then timeout=$2; shift 2; fi
	d=$(guest_domid "$name") || { note "guest_run: no guest $name"; return 125; }
	n=$(($(cat "/run/rig/$name.seq") + 1))
	echo "$n" >"/run/rig/$name.seq"
	base=/local/domain/$d/rig
	xenstore-write -R -- "$base/cmd/$n" "$*" || return 125
	if ! wait_for "$timeout" xenstore-read "$base/rc/$n"; then
		note "guest_run: '$*' timed out after ${timeout} s"
		rm -f "/run/rig/$name.seq"
		return 124
	fi
	# chunks are raw: `xenstore-read -R` neither escapes nor appends a newline
	for k in $(xenstore-list "$base/out/$n" 2>/dev/null | sort); do
		xenstore-read -R "$base/out/$n/$k"
	done
	rc=$(xenstore-read "$base/rc/$n")
	if xenstore-read "$base/err/$n" >/dev/null 2>&1; then
		note "guest_run: output lost: $(xenstore-read "$base/err/$n")"
		rc=126
	fi
	xenstore-rm "$base/cmd/$n" "$base/out/$n" "$base/rc/$n" "$base/err/$n" 2>/dev/null
	return "$rc"
}

# ensure_guest: start the guest unless a usable one is running.
# shellcheck disable=SC2119 # the default guest
ensure_guest() { guest_running || guest_start; }

# xs_apply FILE: write every `<path> = "<value>"` line of FILE (the format of
# `xl-vscsi apply --dry-run` and `xenstore-ls -f`) in one xenstore-write, which
# is one transaction. Values with escapes are taken literally between the quotes.
xs_apply() {
	local args=() line path val
	while IFS= read -r line; do
		[[ $line =~ ^(/[^ ]+)\ =\ \"(.*)\"$ ]] || continue
		path=${BASH_REMATCH[1]}
		val=${BASH_REMATCH[2]}
		args+=("$path" "$val")
	done <"$1"
	((${#args[@]})) || { note "xs_apply: no '<path> = \"<value>\"' lines in $1"; return 1; }
	xenstore-write -- "${args[@]}"
}

# xs_apply_json FILE: apply the JSON of `xl-vscsi apply --dry-run --json` the
# way the toolstack must (docs/protocol.md §2.3): parent directories ("dir")
# created and chmod'ed first, so that nodes inherit their permissions; then
# every node in ONE xenstore-write (one transaction); then each node's perms.
xs_apply_json() {
	local f=$1 path perms args=()
	jq -e 'type == "array" and length > 0' "$f" >/dev/null || { note "xs_apply_json: $f is not a JSON list"; return 1; }
	while IFS=$'\t' read -r path perms; do
		xenstore-write "$path" "" || return 1
		# shellcheck disable=SC2086 # perms is "n5 r0": one argument per word
		xenstore-chmod "$path" $perms || return 1
	done < <(jq -r '.[] | select(.kind == "dir") | [.path, .perms] | @tsv' "$f")
	mapfile -d '' args < <(jq -j '.[] | select(.kind == "node") | .path, "\u0000", .value, "\u0000"' "$f")
	((${#args[@]})) || { note "xs_apply_json: no nodes in $f"; return 1; }
	xenstore-write -R -- "${args[@]}" || return 1
	while IFS=$'\t' read -r path perms; do
		# shellcheck disable=SC2086
		xenstore-chmod "$path" $perms || return 1
	done < <(jq -r '.[] | select(.kind == "node") | [.path, .perms] | @tsv' "$f")
}

# result_file NAME: path of a file that ends up in $RIG_LOGS/NAME on the host.
result_file() { mkdir -p "$RIG_OUT" && echo "$RIG_OUT/$1"; }

# have PROGRAM: 0 if PROGRAM is in PATH (project binaries are in /rig/bin).
have() { command -v "$1" >/dev/null 2>&1; }

# aa_start LOG CMD...: run CMD (a vscsi-autoattach command line) in the
# background, output appended to LOG, and wait until it logs that it watches.
AA_PID=
aa_start() {
	local log=$1 n
	shift
	n=$(grep -c 'watching for new domains' "$log" 2>/dev/null)
	"$@" >>"$log" 2>&1 &
	AA_PID=$!
	# shellcheck disable=SC2016 # expanded by the polled bash
	wait_for 30 bash -c '(($(grep -c "watching for new domains" "$1") > $2))' _ "$log" "${n:-0}" ||
		fail "vscsi-autoattach did not start: $(tail -3 "$log")"
	AA_LOG=$log
}
aa_stop() {
	[[ -n $AA_PID ]] || return 0
	kill "$AA_PID" && wait "$AA_PID"
	local rc=$?
	AA_PID=
	((rc == 0)) || fail "vscsi-autoattach exited $rc on SIGTERM: $(tail -3 "$AA_LOG")"
}
