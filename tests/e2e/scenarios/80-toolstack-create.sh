# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# toolstack-create: `xl-vscsi create` of a guest whose config has two vscsi=
# entries on two vhosts, one a dom0 SCSI disk given as /dev/sdX (scsi_debug,
# exported by LIO iblock; the toolstack resolves it to the LIO port), one an
# LIO fileio LUN by naa. The guest sees both disks; O_DIRECT write + read-back
# verify on the first; mkfs.ext4, a file written and read back, fsck on the
# second. The LUNs stay for toolstack-hotplug .. toolstack-destroy.
# timeout: 900
have xl-vscsi || pending "build/xl-vscsi not built"
# shellcheck source=tests/e2e/dom0/helpers-toolstack.sh
. /rig/helpers-toolstack.sh
W1=naa.50014050000000a1
W2=naa.50014050000000a2

sd=$(ts_scsi_debug_disk) || fail "no scsi_debug disk in dom0 (modprobe scsi_debug)"
note "dom0 SCSI disk: $sd ($(cat "/sys/block/${sd#/dev/}/device/model" 2>/dev/null))"
{ lio-xen-pvscsi.sh delete ts-sd && lio-xen-pvscsi.sh delete ts-file; } || fail "LIO cleanup before the test"
out=$(lio-xen-pvscsi.sh create ts-sd "$sd" $W1 0) || fail "LIO iblock LUN on $sd: $out"
out=$(lio-xen-pvscsi.sh create ts-file /var/lib/rig/ts-file.img:128M $W2 0) || fail "LIO fileio LUN: $out"

cfg=/tmp/ts-g1.cfg
{ cat /rig/guest/g1.cfg; echo "vscsi = [ '$sd,0:0:0:0', '$W2:0,1:0:0:0' ]"; } >$cfg
out=$(xl-vscsi create --dry-run $cfg 2>&1) || fail "create --dry-run: $out"
note "create --dry-run: $(tr '\n' ';' <<<"$out" | cut -c1-300)"
t0=$(now)
out=$(ts_create g1 $cfg --timeout 300s) || fail "xl-vscsi create: $out"
note "xl-vscsi create + guest agent ready in $(since "$t0") s"
d=$(guest_domid) || fail "no g1 after create"

# both vhosts connected, each device 4/4 on both sides
js=$(xl-vscsi scsi-list --json g1) || fail "scsi-list --json: $js"
jq -e 'length == 2 and all(.[]; .backend_state == 4 and .frontend_state == 4 and
	(.devs | length == 1) and all(.devs[]; .backend_state == 4 and .frontend_state == 4))' <<<"$js" >/dev/null ||
	fail "scsi-list --json after create: $js"
jq -e --arg p "$W1:0" --arg n "$sd" 'any(.[].devs[]; .p_dev == $p and .v_dev == "0:0:0:0")' <<<"$js" >/dev/null ||
	fail "$sd was not resolved to $W1:0: $js"
txt=$(xl-vscsi scsi-list g1) || fail "scsi-list: $txt"
note "scsi-list:"
# shellcheck disable=SC2001 # indent every line
sed 's/^/    /' <<<"$txt"
[[ $(grep -c "^$d " <<<"$txt") == 2 ]] || fail "scsi-list text: want 2 rows for domain $d: $txt"

ts_wait_disks 2 60 || fail "guest does not see 2 disks"
disks=$(ts_scsi_disks)
note "guest lsscsi disks: $(tr '\n' ';' <<<"$disks")"
[[ $(grep -c ' LIO-ORG ' <<<"$disks") == 2 ]] || fail "guest disks are not both LIO: $disks"
# which guest disk is which: the fileio LUN is 128 MiB, the scsi_debug one 64 MiB
big=$(guest_run 'for b in /sys/block/sd*; do [ $(cat $b/size) = 262144 ] && echo /dev/${b##*/}; done')
small=$(guest_run 'for b in /sys/block/sd*; do [ $(cat $b/size) = 131072 ] && echo /dev/${b##*/}; done')
[[ $big == /dev/sd* && $small == /dev/sd* ]] || fail "guest disk sizes: 128 MiB '$big', 64 MiB '$small'"

out=$(guest_run -t 180 "fio --name=verify --filename=$small --direct=1 --ioengine=libaio --rw=write --bs=64k --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse") ||
	fail "O_DIRECT write/verify on $small failed: $(tail -3 <<<"$out")"
out=$(guest_run "dd if=/dev/urandom of=/tmp/p bs=4096 count=256 2>/dev/null && dd if=/tmp/p of=$small bs=4096 seek=4096 oflag=direct 2>/dev/null && dd if=$small of=/tmp/q bs=4096 skip=4096 count=256 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q && echo same") ||
	fail "dd O_DIRECT round trip on $small differs: $out"
note "O_DIRECT write + read-back verify on $small (dom0 $sd via iblock) passed"
# the data really went to dom0's disk: read it there and compare checksums
gsum=$(guest_run "dd if=$small bs=4096 skip=4096 count=256 iflag=direct 2>/dev/null | md5sum | cut -c1-32")
hsum=$(dd if="$sd" bs=4096 skip=4096 count=256 iflag=direct 2>/dev/null | md5sum | cut -c1-32)
[[ $gsum == "$hsum" ]] || fail "guest wrote $gsum, dom0's $sd holds $hsum"

out=$(guest_run -t 300 "mkfs.ext4 -q -F $big && mkdir -p /mnt/t && mount -t ext4 $big /mnt/t && seq 1 100000 >/mnt/t/f && sync && umount /mnt/t && mount -t ext4 $big /mnt/t && seq 1 100000 | cmp - /mnt/t/f && umount /mnt/t && e2fsck -fn $big") ||
	fail "mkfs.ext4 / file round trip / e2fsck on $big: $(tail -5 <<<"$out")"
note "mkfs.ext4 + file write/read + e2fsck -fn clean on $big"
