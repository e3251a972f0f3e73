#!/bin/busybox sh
# shellcheck shell=sh
# PID 1 of the rig's PV guest (its whole root is the initramfs). Loads the
# SCSI frontend, then serves dom0's commands over xenstore (the "guest agent"):
#
#   dom0 writes  /local/domain/<me>/rig/cmd/<n>   = a shell script   (n = 1, 2, ...)
#   guest writes /local/domain/<me>/rig/out/<n>/<k> = its output, 1500-byte chunks
#                /local/domain/<me>/rig/rc/<n>      = its exit status (written last)
#
# dom0 creates rig/ (owned by the guest) before unpausing the guest. Commands
# run one at a time, in order. Console output (hvc0, logged by xenconsoled in
# dom0) echoes each command and its output for humans.
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
# Be an init for `xl reboot` / `xl shutdown`: the guest kernel execs
# /sbin/reboot or /sbin/poweroff, and busybox's versions signal PID 1
# (TERM: reboot, USR2: poweroff, USR1: halt). The trap runs once the
# current command ends.
trap 'echo "GUEST: reboot"; sync; exec /bin/busybox reboot -f' TERM
trap 'echo "GUEST: poweroff"; sync; exec /bin/busybox poweroff -f' USR1 USR2
echo "GUEST: $(uname -r) up $(cut -d' ' -f1 /proc/uptime) s, $(grep MemTotal /proc/meminfo)"
while read -r m; do
	insmod "/mods/$m" 2>/dev/null || echo "GUEST: insmod $m failed (fine if built in)"
done </mods/order
echo "GUEST: modules: $(lsmod | awk 'NR>1{print $1}' | tr '\n' ' ')"

# xenstore access from a domU goes through /dev/xen/xenbus
i=0
while [ ! -e /dev/xen/xenbus ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
me=$(xenstore-read domid)

# Boot-time mount (the lifecycle scenarios): with govscsi.mount=<ext4 label>
# on the kernel command line (the config's extra=), the guest mounts that
# filesystem from its vscsi disks at boot, as an fstab entry would, before
# the agent starts: the disk must be there when the guest runs. It records
# what it found at its first look at xenstore (the vscsi vhosts, and the
# first one's backend state) and how long it waited, in /run/boot-mount.
bm=$(sed -n 's/.*govscsi\.mount=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$bm" ]; then
	t0=$(cut -d' ' -f1 /proc/uptime)
	vh=$(xenstore-list device/vscsi 2>/dev/null | tr '\n' ' ')
	be=none
	if b=$(xenstore-read device/vscsi/0/backend 2>/dev/null); then
		be=$(xenstore-read "$b/state" 2>/dev/null || echo missing)
	fi
	dev=
	i=0
	while [ $i -lt 300 ]; do # 60 s, as a boot's root-device wait would
		dev=$(findfs "LABEL=$bm" 2>/dev/null) && break
		sleep 0.2
		i=$((i + 1))
	done
	mkdir -p /mnt/boot
	if [ -n "$dev" ] && mount -t ext4 "$dev" /mnt/boot; then
		res=mounted
	else
		res=failed
	fi
	echo "GUEST-BOOT-MOUNT label=$bm result=$res dev=$dev vhosts_at_start=[$vh] backend_state_at_start=$be at=${t0}s waited=$((i / 5)).$((i % 5 * 2))s" | tee /run/boot-mount
fi


if ! xenstore-write rig/ready 1; then
	echo "GUEST-AGENT-FAIL: cannot write rig/ready (domid $me)"
fi
echo "GUEST-AGENT-READY domid $me"

# put_output N FILE: FILE into rig/out/N/000, 001, ... xenstored limits what
# a guest may store per node (quota-max-entry-size, 2048 bytes by default), so
# chunks are 1500 bytes; a failed write is reported in rig/err/N.
put_output() {
	size=$(wc -c <"$2")
	k=0
	while [ $((k * 1500)) -lt "$size" ] || [ $k -eq 0 ]; do
		# the trailing "." keeps a chunk's final newlines, which $(...) would eat
		v=$(dd if="$2" bs=1500 skip=$k count=1 2>/dev/null; echo .)
		# "--": a chunk may start with "-", which getopt would take for an option
		if ! xenstore-write -R -- "rig/out/$1/$(printf %03d $k)" "${v%.}"; then
			xenstore-write "rig/err/$1" "output chunk $k of $size bytes could not be stored"
			return 1
		fi
		k=$((k + 1))
	done
}

n=1
while :; do
	if cmd=$(xenstore-read -R "rig/cmd/$n" 2>/dev/null); then
		echo "GUEST-RUN $n: $cmd"
		sh -c "$cmd" >"/tmp/out.$n" 2>&1 </dev/null
		rc=$?
		tail -n 50 "/tmp/out.$n"
		put_output "$n" "/tmp/out.$n"
		xenstore-write "rig/rc/$n" "$rc"
		echo "GUEST-RC $n: $rc"
		rm -f "/tmp/out.$n"
		n=$((n + 1))
	else
		sleep 0.2
	fi
done
