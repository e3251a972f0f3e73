# shellcheck shell=bash
# Helpers for the toolstack scenarios (6x-toolstack-*, capi-live,
# hotplug-kernel, demo). Sourced after /rig/helpers.sh:
#   . /rig/helpers-toolstack.sh
#
#   ts_create NAME CFG [xl-vscsi options]   `xl-vscsi create CFG` with the guest
#                                           agent's rig/ made while paused
#   ts_scsi_disks                           guest: "H:C:T:L VENDOR /dev/sdX" per disk
#                                           (busybox lsscsi separates with tabs)
#   ts_wait_disks N [TIMEOUT_S]             until the guest has N SCSI disks
#   ts_vhost_of DOMAIN IDX                  the vhost devid serving vdev host IDX
#   ts_xs_snap DOMID                        xenstore-ls -fp of everything vscsi
#                                           touches for DOMID (compare before/after)
#   ts_scsi_debug_disk                      dom0: modprobe scsi_debug, print /dev/sdX

# ts_xl_wrapper: an `xl` for XL= (test plumbing, not product code). The guest
# agent needs /local/domain/<d>/rig, owned by the guest, before the guest runs
# (guest_start does it between `xl create -p` and `xl unpause`). `xl-vscsi
# create` runs `xl create -p` and `xl unpause` itself, so this wrapper makes
# rig/ right after a successful `xl create` of $TS_AGENT_NAME.
ts_xl_wrapper() {
	local w=/run/rig/xl-agent
	cat >"$w" <<'EOF2'
#!/bin/bash
xl "$@" || exit
if [[ $1 == create && -n ${TS_AGENT_NAME:-} ]]; then
	d=$(xl domid "$TS_AGENT_NAME") || exit
	xenstore-write "/local/domain/$d/rig" "" && xenstore-chmod "/local/domain/$d/rig" "n$d" || exit
fi
EOF2
	chmod 755 "$w"
	echo "$w"
}

# ts_create NAME CFG [xl-vscsi create options...]: (re)create guest NAME from
# CFG through `xl-vscsi create` and wait for its agent. Prints xl-vscsi's
# output; returns its status (or 1 if the agent never answered).
ts_create() {
	local name=$1 cfg=$2 d out rc t0
	shift 2
	t0=$(now)
	if guest_domid "$name" >/dev/null; then xl destroy "$name" || return 1; fi
	rm -f "$(guest_console "$name")" "/run/rig/$name.seq"
	out=$(XL=$(ts_xl_wrapper) TS_AGENT_NAME=$name xl-vscsi create "$@" "$cfg" 2>&1)
	rc=$?
	[[ -n $out ]] && echo "$out"
	((rc == 0)) || return "$rc"
	d=$(guest_domid "$name") || return 1
	if ! wait_xs "/local/domain/$d/rig/ready" 1 300; then
		note "guest agent not ready; console tail:"
		tail -n 20 "$(guest_console "$name")" | sed 's/^/    /'
		return 1
	fi
	echo 0 >"/run/rig/$name.seq"
	note "guest $name (domid $d) created by xl-vscsi create, agent ready in $(since "$t0") s"
}

# ts_scsi_disks: the guest's SCSI disks, one "H:C:T:L VENDOR /dev/sdX" line each
# (from lsscsi; sorted by device name).
ts_scsi_disks() {
	guest_run -t 60 'lsscsi' | awk '$2 == "disk" { gsub(/[][]/, "", $1); print $1, $3, $NF }' | sort -k3
}

# ts_wait_disks N [TIMEOUT_S]: until the guest's lsscsi lists exactly N disks.
ts_wait_disks() {
	local n=$1 timeout=${2:-60}
	# bounded by the guest's clock, not by a number of tries: under a loaded
	# TCG host one lsscsi can take a second
	# shellcheck disable=SC2016 # guest-side code
	guest_run -t $((timeout + 60)) "end=\$((\$(date +%s) + $timeout)); while [ \$(date +%s) -lt \$end ]; do [ \$(lsscsi | grep -cw disk) = $n ] && exit 0; sleep 0.5; done; lsscsi; exit 1"
}

# ts_vhost_of DOMAIN IDX: the vhost devid that serves vdev host IDX (scsi-list --json).
ts_vhost_of() {
	xl-vscsi scsi-list --json "$1" | jq -e --argjson i "$2" '[.[] | select(.idx == $i) | .vhost][0] // empty'
}

# ts_xs_snap DOMID: every xenstore node vscsi touches for DOMID, with
# permissions: its backend tree, its frontend vscsi dirs, the toolstack's
# /libxl/DOMID/vscsi and the backend's error nodes.
ts_xs_snap() {
	local d=$1 p
	for p in /local/domain/0/backend/vscsi/"$d" /local/domain/"$d"/device/vscsi \
		/libxl/"$d"/vscsi /local/domain/0/error/backend/vscsi/"$d"; do
		xenstore-ls -fp "$p" 2>/dev/null
	done
}

# ts_scsi_debug_disk: load scsi_debug in dom0 (one 64 MiB disk) and print its
# /dev/sdX (dom0's own disks are virtio, so it is the only SCSI disk).
ts_scsi_debug_disk() {
	local f
	# no udevd in the rig's dom0: nothing loads sd_mod for a new SCSI disk
	modprobe sd_mod || return 1
	if [[ ! -d /sys/bus/pseudo/drivers/scsi_debug ]]; then
		modprobe scsi_debug dev_size_mb=64 max_luns=1 num_tgts=1 >/dev/null 2>&1 || return 1
	fi
	wait_for 30 compgen -G '/sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*/block/*' || return 1
	for f in /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*/block/*; do
		wait_for 30 test -b "/dev/${f##*/}" || return 1
		echo "/dev/${f##*/}"
		return 0
	done
	return 1
}
