#!/bin/busybox sh
# shellcheck shell=sh
# dom0's early userspace: load the virtio + ext4 modules (=m in Debian's
# kernel), mount the cached root image (/dev/vda) and the per-run rig disk with
# the project's files (/dev/vdb, mounted on /rig), then hand over to /rig/init.sh.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do insmod "/mods/$m" 2>/dev/null; done </mods/order
i=0
while { [ ! -b /dev/vda ] || [ ! -b /dev/vdb ]; } && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot || ! mount -t ext4 -o rw /dev/vdb /newroot/rig; then
	echo "RIG-FAIL: initramfs: cannot mount /dev/vda or /dev/vdb"
	exec sh
fi
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot /rig/init.sh
