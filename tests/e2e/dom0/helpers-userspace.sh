# shellcheck shell=bash
# Helpers for the userspace-backend scenarios (6x-userspace-*, 70-perf-compare):
# the project's daemon build/vscsi-backend run in dom0 in the background.
# Sourced by those scenarios after /rig/helpers.sh.
#
#   us_backend_type            the backend type directory `xl-vscsi --flavour
#                              userspace` writes (read from its own dry-run
#                              output, never typed here)
#   us_daemon_start [TYPE]     write the YAML config and start vscsi-backend;
#                              waits for its stats socket. Log: result_file
#                              vscsi-backend-<scenario>.log
#   us_daemon_stop             SIGTERM (a handover: the guests stay connected),
#                              wait for a clean exit (status 0)
#   us_pid                     the daemon's pid
#   us_stats                   one stats snapshot (JSON) from the stats socket
#   us_no_kernel_backend       unload xen-scsiback (it would take backend/vscsi)
#   us_guest_start NAME        a second guest: g1.cfg with another name, same
#                              agent protocol as guest_start
#   us_guest_dev VENDOR [NAME] /dev/sdX in the guest whose vendor is VENDOR
#                              (waits up to 60 s)
#   us_guest_sg VENDOR [NAME]  /dev/sgN in the guest of the disk whose vendor is VENDOR
#   us_attach DOM PDEV VDEV    xl-vscsi --flavour userspace scsi-attach
#   us_detach DOM VDEV         xl-vscsi scsi-detach
#   us_cleanup                 remove every vscsiu vhost of every guest and stop
#                              the daemon (scenarios: trap us_cleanup EXIT, so a
#                              failed scenario leaves nothing to the next one)
US_DIR=/srv/govscsi
US_CONF=/run/rig/vscsi-backend.yaml
US_SOCK=/run/rig/vscsi-backend.sock
US_PIDFILE=/run/rig/vscsi-backend.pid

us_backend_type() {
	local cfg=/tmp/us-type.cfg
	printf 'name = "probe"\nvscsi = [ "ram:1M,0:0:0:0" ]\n' >"$cfg"
	xl-vscsi apply --flavour userspace --dry-run --json "$cfg" 1 2>/dev/null |
		jq -r '[.[] | select(.path | endswith("/frontend-id")) | .path | capture("/backend/(?<t>[^/]+)/").t][0] // empty'
}

us_no_kernel_backend() {
	local n fabric=/sys/kernel/config/target/xen-pvscsi
	[[ -d /sys/module/xen_scsiback ]] || return 0
	# Earlier kernel-backend scenarios leave xen-scsiback loaded; LIO holds
	# it while its configfs fabric directory exists. Delete every LUN the
	# project made, then the (empty) fabric directory, then the module.
	for n in $(lio-xen-pvscsi.sh list 2>/dev/null | awk '{print $1}' | sort -u); do
		lio-xen-pvscsi.sh delete "$n" || note "us_no_kernel_backend: lio delete $n failed"
	done
	[[ ! -d $fabric ]] || rmdir "$fabric" || note "us_no_kernel_backend: $fabric: $(ls "$fabric")"
	rmmod xen-scsiback || { note "us_no_kernel_backend: rmmod: refcnt $(cat /sys/module/xen_scsiback/refcnt)"; return 1; }
	[[ ! -d /sys/module/xen_scsiback ]]
}

us_pid() { cat "$US_PIDFILE" 2>/dev/null; }

us_daemon_start() {
	local type=${1:-$(us_backend_type)} log pid
	[[ -n $type ]] || { note "us_daemon_start: no backend type"; return 1; }
	mkdir -p "$US_DIR"
	cat >"$US_CONF" <<EOF
backend_type: $type
log_level: trace
stats_socket: $US_SOCK
allow_paths:
  - /dev/
  - $US_DIR/
max_ram: 1G
EOF
	log=$(result_file "vscsi-backend-${RIG_SCENARIO:-shell}.log")
	us_daemon_stop || return 1 # one daemon per backend type
	rm -f "$US_SOCK"
	# US_DAEMON_ENV / US_DAEMON_ARGS: extra environment and flags (perf work)
	# shellcheck disable=SC2086 # word lists on purpose
	env ${US_DAEMON_ENV:-} vscsi-backend --config "$US_CONF" --foreground ${US_DAEMON_ARGS:-} >>"$log" 2>&1 &
	pid=$!
	echo "$pid" >"$US_PIDFILE"
	if ! wait_for 30 test -S "$US_SOCK"; then
		note "vscsi-backend did not open its stats socket; log tail:"
		tail -n 20 "$log" | sed 's/^/    /'
		return 1
	fi
	note "vscsi-backend (pid $pid, type $type) up"
}

us_daemon_stop() {
	local pid rc
	pid=$(us_pid) || return 0
	# it may have exited already (xl-vscsi backend-stop): still reap it
	kill -TERM "$pid" 2>/dev/null
	wait_for 60 bash -c "! kill -0 $pid" || { note "vscsi-backend $pid did not exit after SIGTERM"; return 1; }
	wait "$pid" 2>/dev/null
	rc=$?
	rm -f "$US_PIDFILE"
	((rc == 127)) && return 0 # not this shell's child: its status is unknown
	((rc == 0)) || { note "vscsi-backend exited with status $rc"; return 1; }
}

us_stats() { # the daemon's snapshot through the product's own command
	xl-vscsi stats --json --socket "$US_SOCK"
}

# us_guest_start NAME: like guest_start, from g1.cfg with name NAME (and no
# CPU pinning clash: the config is otherwise the same).
us_guest_start() {
	local name=$1 cfg=/run/rig/$1.cfg d t0
	t0=$(now)
	if guest_domid "$name" >/dev/null; then xl destroy "$name" || return 1; fi
	rm -f "$(guest_console "$name")"
	sed "s/^name = .*/name = \"$name\"/" /rig/guest/g1.cfg >"$cfg"
	xl create -p "$cfg" >/dev/null || { note "xl create $name failed"; return 1; }
	d=$(guest_domid "$name") || return 1
	xenstore-write "/local/domain/$d/rig" "" &&
		xenstore-chmod "/local/domain/$d/rig" "n$d" || return 1
	xl unpause "$name" || return 1
	if ! wait_xs "/local/domain/$d/rig/ready" 1 400; then
		note "guest $name agent not ready; console tail:"
		tail -n 20 "$(guest_console "$name")" | sed 's/^/    /'
		return 1
	fi
	echo 0 >"/run/rig/$name.seq"
	note "guest $name (domid $d) ready in $(since "$t0") s"
}

# us_guest_dev VENDOR [NAME]: the guest's /dev/sdX whose SCSI vendor is VENDOR
# (the first one by name), waiting for it to appear.
us_guest_dev() {
	local vendor=$1 name=${2:-$GUEST_NAME}
	# shellcheck disable=SC2016 # guest-side code
	GUEST_NAME=$name guest_run -t 90 'for i in $(seq 1 300); do for b in /sys/block/sd*; do [ -e "$b/device/vendor" ] || continue; v=$(cat "$b/device/vendor"); [ "${v%% *}" = "'"$vendor"'" ] && { echo /dev/${b##*/}; exit 0; }; done; sleep 0.2; done; exit 1'
}

# us_guest_devs VENDOR [NAME]: every /dev/sdX of VENDOR with its h:c:t:l, one a line.
us_guest_devs() {
	local vendor=$1 name=${2:-$GUEST_NAME}
	# shellcheck disable=SC2016 # guest-side code
	GUEST_NAME=$name guest_run 'for b in /sys/block/sd*; do [ -e "$b/device/vendor" ] || continue; v=$(cat "$b/device/vendor"); [ "${v%% *}" = "'"$vendor"'" ] && echo "/dev/${b##*/} $(basename $(readlink -f $b/device))"; done; true'
}

# us_guest_sg VENDOR [NAME]: the guest's /dev/sgN whose SCSI vendor is VENDOR.
us_guest_sg() {
	local vendor=$1 name=${2:-$GUEST_NAME}
	# shellcheck disable=SC2016 # guest-side code
	GUEST_NAME=$name guest_run 'for s in /sys/class/scsi_generic/sg*; do v=$(cat $s/device/vendor 2>/dev/null); [ "${v%% *}" = "'"$vendor"'" ] && { echo /dev/${s##*/}; exit 0; }; done; exit 1'
}

us_attach() {
	local rc
	xl-vscsi scsi-attach --flavour userspace --timeout 60s "$@"
	rc=$?
	((rc == 0)) || us_debug >&2
	return "$rc"
}

# us_debug: what the vhosts look like and where the daemon's goroutines are
# (SIGQUIT makes a Go program print every goroutine's stack and exit).
us_debug() {
	local pid
	# shellcheck disable=SC2046 # one argument per guest name
	xl-vscsi scsi-list --json $(xl list | awk 'NR > 2 {print $1}') 2>&1 | jq -c . 2>/dev/null
	pid=$(us_pid) || return 0
	note "daemon $pid: $(grep -E '^(State|Threads)' "/proc/$pid/status" 2>/dev/null | tr '\n\t' '  ')"
	kill -QUIT "$pid" 2>/dev/null
	sleep 1
}
us_detach() { xl-vscsi scsi-detach --timeout 60s "$@"; }

us_cleanup() {
	local g v
	for g in $(xl list | awk 'NR > 2 {print $1}'); do
		for v in $(xl-vscsi scsi-list --json "$g" 2>/dev/null | jq -r '.[] | select(.backend_type == "vscsiu") | .vhost'); do
			xl-vscsi destroy-vhost --timeout 20s "$g" "$v" >/dev/null 2>&1 || note "cleanup: destroy-vhost $g $v failed"
		done
	done
	us_daemon_stop
}
