# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# tape-changer: a tape drive and a medium changer passed through to a guest,
# by our backend (sg: p-devs) and by the kernel backend (LIO pscsi via
# xen-scsiback). The devices are tgt's emulation (Debian's tgt: an SSC
# tape drive over a file, an SMC changer with 3 slots and 3 tapes) logged
# in over loopback iSCSI in dom0, so dom0 sees a real tape (st) and changer
# (ch). In the guest st and ch bind; a backup admin's session runs: mtx
# status / load, mt-st status, writes of two files with a filemark between,
# rewind, read back and compare, fsf, tell, rewind, offline, mtx unload;
# tapeinfo. Ours also refuses WRITE BUFFER (not in the tape policy).
# timeout: 1500
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
VTL=/srv/govscsi/vtl
IQN=iqn.2026-12.org.govscsi:vtl
WT=naa.500140501234567d WC=naa.500140501234567e
tgtd_pid='' iscsid_pid=''
cleanup() {
	us_cleanup
	for c in 1:0:0:0 1:0:0:1; do xl-vscsi scsi-detach --timeout 30s "$GUEST_NAME" "$c" >/dev/null 2>&1; done
	xl-vscsi destroy-vhost --timeout 30s "$GUEST_NAME" 1 >/dev/null 2>&1
	lio-xen-pvscsi.sh delete vtltape >/dev/null 2>&1
	lio-xen-pvscsi.sh delete vtlchanger >/dev/null 2>&1
	iscsiadm -m node -T "$IQN" -p 127.0.0.1 --logout >/dev/null 2>&1
	[[ -n $tgtd_pid ]] && kill "$tgtd_pid" 2>/dev/null
	[[ -n $iscsid_pid ]] && kill "$iscsid_pid" 2>/dev/null
	rm -rf "$VTL"
}
trap cleanup EXIT
if ! have tgtd || ! have iscsiadm; then pending "tgt and open-iscsi are not in the dom0 root"; fi
have vscsi-backend || pending "build/vscsi-backend not built"
type=$(us_backend_type)
[[ $type != vscsi ]] || pending "our backend type is vscsi: xen-scsiback would take our vhost too (P3)"
us_no_kernel_backend || fail "cannot unload xen-scsiback"
ensure_guest || fail "no guest"
g=$GUEST_NAME

# --- the virtual tape library: tgt's SSC and SMC emulation
t0=$(now)
ip link set lo up
modprobe -a iscsi_tcp sg st ch 2>/dev/null
mkdir -p "$VTL" /etc/iscsi /var/run/tgtd
dd if=/dev/zero of="$VTL/smc" bs=1k count=1 2>/dev/null
for i in 1 2 3; do
	tgtimg --op new --device-type tape --barcode "TAPE0$i" --size 32 --type data --file "$VTL/TAPE0$i" >/dev/null ||
		fail "tgtimg TAPE0$i"
done
tgtd -f --iscsi portal=127.0.0.1:3260 >/tmp/tgtd.log 2>&1 &
tgtd_pid=$!
wait_for 30 tgtadm --op show --mode system || fail "tgtd did not come up: $(tail -3 /tmp/tgtd.log)"
tadm() { tgtadm --lld iscsi "$@" || fail "tgtadm $*"; }
tadm --op new --mode target --tid 1 -T "$IQN"
tadm --mode logicalunit --op new --tid 1 --lun 1 -b "$VTL/TAPE01" --device-type=tape
tadm --mode logicalunit --op update --tid 1 --lun 1 --params online=0
tadm --mode logicalunit --op new --tid 1 --lun 2 -b "$VTL/smc" --device-type=changer
tadm --mode logicalunit --op update --tid 1 --lun 2 --params media_home="$VTL"
tadm --mode logicalunit --op update --tid 1 --lun 2 --params element_type=4,start_address=1,quantity=1
tadm --mode logicalunit --op update --tid 1 --lun 2 --params element_type=4,address=1,tid=1,lun=1
tadm --mode logicalunit --op update --tid 1 --lun 2 --params element_type=1,start_address=2,quantity=1
tadm --mode logicalunit --op update --tid 1 --lun 2 --params element_type=2,start_address=3,quantity=3
for i in 1 2 3; do
	tadm --mode logicalunit --op update --tid 1 --lun 2 --params "element_type=2,address=$((2 + i)),barcode=TAPE0$i,sides=1"
done
tadm --op bind --mode target --tid 1 -I ALL
echo "InitiatorName=iqn.2026-12.org.govscsi:dom0" >/etc/iscsi/initiatorname.iscsi
iscsid -f >/tmp/iscsid.log 2>&1 &
iscsid_pid=$!
wait_for 30 iscsiadm -m discovery -t st -p 127.0.0.1 || fail "iSCSI discovery: $(tail -3 /tmp/iscsid.log)"
iscsiadm -m node -T "$IQN" -p 127.0.0.1 --login >/dev/null || fail "iSCSI login: $(tail -3 /tmp/iscsid.log)"
dev_of() { lsscsi -g | awk -v t="$1" '$2 == t {print $NF; exit}'; }
addr_of() { lsscsi -g | awk -v t="$1" '$2 == t {gsub(/[][]/, "", $1); print $1; exit}'; }
wait_for 60 bash -c '[[ -n $(lsscsi -g | awk "\$2==\"tape\"") && -n $(lsscsi -g | awk "\$2==\"mediumx\"") ]]' ||
	fail "dom0 shows no tape and changer after the login: $(lsscsi -g | tr '\n' ';')"
tsg=$(dev_of tape) csg=$(dev_of mediumx)
note "dom0: tgt VTL over loopback iSCSI in $(since "$t0") s: $(lsscsi -g | grep -E 'tape|mediumx' | tr -s ' ' | tr '\n' ';')"

# session GUEST-TAPE-SG GUEST-CHANGER-SG BACKEND: the admin's session in the guest
session() {
	local ts=$1 cs=$2 be=$3 out
	out=$(guest_run -t 120 "mtx -f $cs status") || fail "$be: mtx status: $out"
	if ! grep -q 'Storage Element 1:Full' <<<"$out" || ! grep -q 'Data Transfer Element 0:Empty' <<<"$out"; then
		fail "$be: mtx status: $(tr '\n' ';' <<<"$out")"
	fi
	out=$(guest_run -t 120 "mtx -f $cs load 1 0") || fail "$be: mtx load 1 0 (MOVE MEDIUM): $out"
	out=$(guest_run -t 60 'for i in $(seq 1 100); do [ -e /dev/nst0 ] && break; sleep 0.2; done; ls /sys/class/scsi_tape/ | tr "\n" " "')
	# the st node of the tape whose sg node is $ts (the same SCSI device)
	st=$(guest_run 'want=$(readlink -f /sys/class/scsi_generic/'"${ts#/dev/}"'/device); for t in /sys/class/scsi_tape/nst*; do case ${t##*/} in nst[0-9] | nst[0-9][0-9]) [ "$(readlink -f $t/device)" = "$want" ] && { echo /dev/${t##*/}; exit 0; } ;; esac; done; exit 1') ||
		fail "$be: no st device for $ts in the guest ($out)"
	out=$(guest_run -t 120 "mt-st -f $st status") || fail "$be: mt-st status: $out"
	note "$be: mt status: $(grep -Ei 'file number|block number|Tape block size|ONLINE|BOT' <<<"$out" | tr -s ' ' | tr '\n' ';')"
	out=$(guest_run -t 300 "dd if=/dev/urandom of=/tmp/f1 bs=64k count=8 2>/dev/null && dd if=/dev/urandom of=/tmp/f2 bs=64k count=4 2>/dev/null &&
		mt-st -f $st rewind && mt-st -f $st setblk 0 &&
		dd if=/tmp/f1 of=$st bs=64k 2>&1 && mt-st -f $st weof 1 && dd if=/tmp/f2 of=$st bs=64k 2>&1 && mt-st -f $st weof 1 &&
		mt-st -f $st rewind && dd if=$st of=/tmp/r1 bs=64k 2>&1 && cmp /tmp/f1 /tmp/r1 &&
		mt-st -f $st rewind && mt-st -f $st fsf 1 && dd if=$st of=/tmp/r2 bs=64k 2>&1 && cmp /tmp/f2 /tmp/r2 &&
		mt-st -f $st tell && mt-st -f $st rewind && echo SESSION-OK") || fail "$be: tape session: $(tail -4 <<<"$out" | tr '\n' ';')"
	grep -q SESSION-OK <<<"$out" || fail "$be: tape session did not finish: $(tail -3 <<<"$out" | tr '\n' ';')"
	note "$be: wrote 512 KiB + filemark + 256 KiB + filemark, rewound, read both back identical (fsf to the second), tell: $(grep -i 'block' <<<"$out" | tail -1)"
	out=$(guest_run -t 120 "tapeinfo -f $ts") || fail "$be: tapeinfo: $out"
	grep -q 'Product Type: Tape Drive' <<<"$out" || fail "$be: tapeinfo: $(tr '\n' ';' <<<"$out")"
	out=$(guest_run -t 120 "mt-st -f $st offline; mtx -f $cs unload 1 0 && mtx -f $cs status") || fail "$be: unload: $out"
	grep -q 'Storage Element 1:Full' <<<"$out" || fail "$be: after unload: $(tr '\n' ';' <<<"$out")"
	note "$be: mtx status/load/unload (READ ELEMENT STATUS, MOVE MEDIUM), tapeinfo (INQUIRY, MODE SENSE, READ BLOCK LIMITS, LOG SENSE) fine"
}

# --- ours: sg: pass-through of both
us_daemon_start "$type" || fail "vscsi-backend did not start"
out=$(us_attach "$g" "sg:$tsg" 0:0:0:0 2>&1) || fail "scsi-attach sg:$tsg: $out"
out=$(us_attach "$g" "sg:$csg" 0:0:0:1 2>&1) || fail "scsi-attach sg:$csg: $out"
guest_run -t 90 'for i in $(seq 1 300); do [ -e /dev/sch0 ] && [ -e /dev/nst0 ] && exit 0; sleep 0.2; done; exit 1' ||
	fail "st and ch did not bind in the guest: $(guest_run 'lsscsi -g; dmesg | grep -Ei " st|ch[0-9 ]|changer" | tail -5')"
gt=$(guest_run 'lsscsi -g | awk "\$2==\"tape\" {print \$NF; exit}"')
gc=$(guest_run 'lsscsi -g | awk "\$2==\"mediumx\" {print \$NF; exit}"')
[[ $gt == /dev/sg* && $gc == /dev/sg* ]] || fail "guest lsscsi: $(guest_run 'lsscsi -g' | tr '\n' ';')"
note "ours: guest sees $(guest_run 'lsscsi -g' | grep -E 'tape|mediumx' | tr -s ' ' | tr '\n' ';')"
session "$gt" "$gc" ours
out=$(guest_run "sg_raw -v $gt 3b 00 00 00 00 00 00 00 00 00 2>&1")
grep -qi 'Invalid command operation code' <<<"$out" || fail "ours: WRITE BUFFER reached the tape: $(tr '\n' ';' <<<"$out")"
note "ours: WRITE BUFFER refused by the tape policy (05/20/00)"
us_detach "$g" 0:0:0:0 >/dev/null 2>&1 || fail "scsi-detach tape"
us_detach "$g" 0:0:0:1 >/dev/null 2>&1 || fail "scsi-detach changer"
xl-vscsi destroy-vhost --timeout 30s "$g" 0 >/dev/null 2>&1
us_daemon_stop || fail "daemon did not stop cleanly"

# --- the kernel backend: LIO pscsi of both, through xen-scsiback
ta=$(addr_of tape) ca=$(addr_of mediumx)
lio-xen-pvscsi.sh create vtltape "pscsi:$ta" $WT 0 >/dev/null || fail "LIO pscsi tape $ta"
lio-xen-pvscsi.sh create vtlchanger "pscsi:$ca" $WC 0 >/dev/null || fail "LIO pscsi changer $ca"
out=$(xl-vscsi scsi-attach --flavour kernel --timeout 60s "$g" "$WT:0" 1:0:0:0 2>&1) || fail "kernel attach tape: $out"
out=$(xl-vscsi scsi-attach --flavour kernel --timeout 60s "$g" "$WC:0" 1:0:0:1 2>&1) || fail "kernel attach changer: $out"
guest_run -t 90 'for i in $(seq 1 300); do [ -e /dev/sch0 ] && [ -e /dev/nst0 ] && exit 0; sleep 0.2; done; exit 1' ||
	fail "kernel backend: st and ch did not bind: $(guest_run 'lsscsi -g' | tr '\n' ';')"
gt=$(guest_run 'lsscsi -g | awk "\$2==\"tape\" {print \$NF; exit}"')
gc=$(guest_run 'lsscsi -g | awk "\$2==\"mediumx\" {print \$NF; exit}"')
session "$gt" "$gc" kernel
