#!/bin/bash
# PID 1 of the rig's dom0 (no systemd): bring up the Xen userspace as
# xencommons would, then run the scenarios (rig.mode=test) or give an
# interactive shell on the console (rig.mode=shell). Finally write the logs to
# the out disk (/dev/vdc, a tar stream the host unpacks) and reboot, which
# makes Xen reset the machine and QEMU (-no-reboot) exit.
export PATH=/rig/bin:/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck source=tests/e2e/dom0/helpers.sh
. /rig/helpers.sh

mount -o remount,rw /
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm
# what udev would add to devtmpfs: bash's process substitution needs /dev/fd
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
# fresh logs every boot: xenconsoled appends to guest-<name>.log
mount -t tmpfs tmpfs /var/log
mkdir -p /run/xen /run/xenstored /var/log/xen/console /var/lib/xen "$RIG_OUT"
hostname dom0
rig_log "dom0 init, kernel $(uname -r), cmdline: $(cat /proc/cmdline)"

for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs configfs; do
	modprobe "$m" || rig_log "modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen
mount -t configfs configfs /sys/kernel/config
t0=$(now)
xenstored --pid-file /run/xen/xenstored.pid || rig_log "xenstored failed to start"
for _ in $(seq 1 100); do [[ -S /run/xenstored/socket ]] && break; sleep 0.1; done
xen-init-dom0 >/dev/null || rig_log "xen-init-dom0 failed"
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console ||
	rig_log "xenconsoled failed to start"
rig_log "xen daemons up in $(since "$t0") s"
rig_log "DOM0-READY"

# save_out: everything the host should see, as a tar stream on /dev/vdc
save_out() {
	cp /var/log/xen/console/*.log "$RIG_OUT/" 2>/dev/null
	cp /var/log/xen/*.log "$RIG_OUT/" 2>/dev/null
	dmesg >"$RIG_OUT/dom0-dmesg.txt"
	xl dmesg >"$RIG_OUT/xen-dmesg.txt" 2>&1
	if [[ -b /dev/vdc ]]; then
		tar -cf /dev/vdc -C "$RIG_OUT" . && rig_log "results saved ($(du -sh "$RIG_OUT" | cut -f1))"
	fi
}

case $(sed -n 's/.*rig\.mode=\([a-z]*\).*/\1/p' /proc/cmdline) in
shell)
	cat >/root/.bashrc <<'EOF'
export PATH=/rig/bin:/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
. /rig/helpers.sh
rig-run() { /rig/run-scenarios.sh "$@"; }
PS1='dom0# '
echo "govscsi rig: rig-run [NAME...] runs scenarios; guest_start; guest_run CMD; 'poweroff-rig' ends QEMU"
poweroff-rig() { exit 0; }   # init saves the logs to the out disk, then resets
EOF
	# a controlling tty for job control: setsid + the console as stdin
	HOME=/root TERM=${TERM:-vt100} setsid bash -c 'exec bash --rcfile /root/.bashrc -i </dev/hvc0 >/dev/hvc0 2>&1'
	;;
*)
	/rig/run-scenarios.sh 2>&1
	;;
esac
save_out
sync
rig_log "RIG-DONE"
echo b >/proc/sysrq-trigger
sleep 60
