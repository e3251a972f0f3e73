# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# autoattach: the installed package's vscsi-autoattach (started in the
# background: dom0 has no systemd) gives a guest started by plain `xl create`
# the vscsi= disk of its config (kernel backend, LIO ramdisk): the guest sees
# it (lsscsi) and an O_DIRECT round trip compares equal, with no other command.
# `xl reboot` brings the guest back under a new domid: the daemon attaches
# again, the old domid's trees go, the rebooted guest sees the disk. A killed
# and restarted daemon (and `--once`) changes nothing in xenstore. A config
# with a bad vscsi= line gives one ERROR line naming the domain and the token,
# and no tree. A vhost removed from the running guest comes back with `--once`
# (hot-plugged). `xl destroy` leaves no vscsi tree (P26).
# timeout: 1500
mapfile -t debs < <(ls /rig/bin/govscsi_*.deb 2>/dev/null)
((${#debs[@]} == 1)) || pending "need exactly one build/govscsi_*.deb (make deb): ${debs[*]}"
if [[ $(dpkg-query -W -f '${Status}' govscsi 2>/dev/null) != "install ok installed" ]]; then
	out=$(dpkg -i "${debs[0]}" 2>&1) || fail "dpkg -i: $(tail -3 <<<"$out")"
fi
# the packaged programs, not /rig/bin's
AA=/usr/sbin/vscsi-autoattach
XLV=/usr/sbin/xl-vscsi
[[ -x $AA && -x $XLV ]] || fail "the package did not install $AA and $XLV"
W=naa.5001405012345678
dir=/tmp/autoattach
log=$(result_file autoattach.log)
rm -rf "$dir" && mkdir -p "$dir"
lio-xen-pvscsi.sh delete ram0 || fail "LIO cleanup before the test"
lio-xen-pvscsi.sh create ram0 ram:64M $W 0 >/dev/null || fail "LIO ramdisk LUN"
{ cat /rig/guest/g1.cfg; echo "vscsi = [ '$W:0,0:0:0:0' ]"; } >"$dir/g1.cfg"

# the daemon reads the shipped /etc/govscsi/autoattach.yaml (kernel flavour,
# init_timeout 5m); only the config directory is the test's
start_daemon() { aa_start "$log" "$AA" --config-dir "$dir" --log-level debug; }
stop_daemon() { aa_stop; }
trap '[[ -n $AA_PID ]] && kill "$AA_PID" 2>/dev/null' EXIT
# the vscsi state of domain $1 (backend, frontend, libxl trees; permissions included)
snap() { xenstore-ls -fp "/local/domain/0/backend/vscsi/$1"; xenstore-ls -fp "/local/domain/$1/device/vscsi"; xenstore-ls -fp "/libxl/$1/vscsi"; }
# no_vscsi_trees DOMID: nothing of the domain's vscsi state is left
no_vscsi_trees() {
	! xenstore-exists "/local/domain/0/backend/vscsi/$1" && ! xenstore-exists "/libxl/$1/vscsi" &&
		! xenstore-exists "/local/domain/$1/device/vscsi"
}
# rig_dir DOMID: the guest agent's directory (owned by the guest); the guest
# needs it before its init reaches the agent, 20+ s after xl returns under TCG
rig_dir() { xenstore-write "/local/domain/$1/rig" "" && xenstore-chmod "/local/domain/$1/rig" "n$1"; }
# wait_attached DOMID: vhost 0 and its LUN connected, the daemon logged it
wait_attached() {
	local be=/local/domain/0/backend/vscsi/$1/0
	if ! wait_xs "$be/state" 4 400 || ! wait_xs "$be/vscsi-devs/dev-0/state" 4 60; then
		tail -n 20 "$log" | sed 's/^/    /'
		fail "the vhost of domain $1 did not connect"
	fi
	wait_for 30 grep -Eq "vscsi devices attached.* domid=$1( |\$)" "$log" || fail "no 'vscsi devices attached' line for domid $1"
}
# guest_disk: wait for the LIO disk in the guest, print its /dev node
guest_disk() {
	local out
	out=$(guest_run -t 90 'for i in $(seq 1 400); do ls /sys/block | grep -q "^sd" && break; sleep 0.2; done; lsscsi; ls /sys/block | grep "^sd"') ||
		fail "guest: $out"
	grep -q 'LIO-ORG' <<<"$out" || fail "the guest sees no LIO disk: $out"
	echo "/dev/$(tail -1 <<<"$out")"
}
# round_trip DEV: O_DIRECT write of 256 KiB of random data, read back, compare
round_trip() {
	local out
	out=$(guest_run -t 120 "dd if=/dev/urandom of=/tmp/p bs=4096 count=64 2>/dev/null && dd if=/tmp/p of=$1 bs=4096 oflag=direct 2>/dev/null && dd if=$1 of=/tmp/q bs=4096 count=64 iflag=direct 2>/dev/null && cmp /tmp/p /tmp/q && echo same") ||
		fail "O_DIRECT round trip on $1: $out"
	[[ $out == same ]] || fail "O_DIRECT round trip on $1: $out"
}
# agent_ready DOMID: the guest agent answers (a fresh guest: commands from 1)
agent_ready() {
	if ! wait_xs "/local/domain/$1/rig/ready" 1 400; then
		grep -a 'GUEST-AGENT' "$(guest_console)" | tail -3 | sed 's/^/    /'
		fail "guest agent of domain $1 not ready (did it start before rig/ existed?)"
	fi
	echo 0 >"/run/rig/$GUEST_NAME.seq"
}

if guest_domid >/dev/null; then xl destroy "$GUEST_NAME" || fail "xl destroy of the old guest"; fi
rm -f "$(guest_console)"
: >"$log"
start_daemon

# 1. Plain xl create (no -p): the daemon attaches while the guest boots.
t0=$(now)
xl create "$dir/g1.cfg" >/dev/null || fail "xl create failed"
d=$(guest_domid) || fail "no domid after xl create"
rig_dir "$d" || fail "rig dir of domain $d"
wait_attached "$d"
note "plain xl create: vhost of domain $d connected $(since "$t0") s after xl create"
$XLV scsi-list "$d" | sed 's/^/    /'
agent_ready "$d"
dev=$(guest_disk) || exit 1 # guest_disk failed: its reason stands
round_trip "$dev"
note "guest (domid $d) started by plain xl create: $dev is the LIO disk, O_DIRECT round trip ok ($(since "$t0") s)"

# 2. xl reboot: xl re-creates the domain under a new domid; the daemon
#    cleans the old one and attaches to the new one.
#    (The guest kernel execs /sbin/reboot; busybox's signals PID 1, the
#    guest's init.sh, which reboots.)
t0=$(now)
xl reboot "$GUEST_NAME" || fail "xl reboot"
wait_for 300 bash -c "d2=\$(xl domid $GUEST_NAME 2>/dev/null) && [[ \$d2 != $d ]]" ||
	fail "no new domid after xl reboot (still $(guest_domid))"
d2=$(guest_domid) || fail "guest gone after xl reboot"
rig_dir "$d2" || fail "rig dir of domain $d2"
note "xl reboot: domid $d -> $d2 in $(since "$t0") s"
wait_attached "$d2"
wait_for 60 no_vscsi_trees "$d" || fail "vscsi trees of the old domid $d left after the reboot: $(snap "$d" 2>&1 | head -5)"
agent_ready "$d2"
dev=$(guest_disk) || exit 1 # guest_disk failed: its reason stands
round_trip "$dev"
note "after xl reboot: domain $d2 has its disk again ($dev, round trip ok) $(since "$t0") s after xl reboot; domain $d's trees gone"
d=$d2

# 3. The daemon killed and restarted (and --once) writes nothing.
before=$(snap "$d")
[[ -n $before ]] || fail "empty snapshot of domain $d"
stop_daemon
start_daemon
wait_for 30 grep -Eq "already has vscsi vhosts.* domid=$d( |\$)" "$log" ||
	fail "the restarted daemon did not leave domain $d alone: $(tail -3 "$log")"
[[ $(snap "$d") == "$before" ]] || fail "the restarted daemon changed the vscsi trees: $(diff <(echo "$before") <(snap "$d") | head -5)"
out=$("$AA" --config-dir "$dir" --once 2>&1) || fail "--once failed: $(tail -3 <<<"$out")"
grep -q "already has vscsi vhosts" <<<"$out" || fail "--once did not leave the domain alone: $out"
[[ $(snap "$d") == "$before" ]] || fail "--once changed the vscsi trees"
note "daemon restart and --once: xenstore-ls -fp of the vscsi trees identical"

# 4. A bad vscsi= line: one ERROR line naming the domain and the token, no tree.
sed -e 's/^name = .*/name = "g1bad"/' -e 's/^memory = .*/memory = 128/' /rig/guest/g1.cfg >"$dir/g1bad.cfg"
echo "vscsi = [ '$W:0,0:0:1:0,feature-hots' ]" >>"$dir/g1bad.cfg"
xl create -p "$dir/g1bad.cfg" >/dev/null || fail "xl create -p g1bad"
db=$(xl domid g1bad) || fail "no domid for g1bad"
wait_for 60 grep -Eq "bad vscsi= entry.* domid=$db( |\$)" "$log" || fail "no ERROR line for g1bad: $(tail -3 "$log")"
line=$(grep -E "bad vscsi= entry.* domid=$db( |\$)" "$log")
for want in '[ERROR]' "name=g1bad" feature-hots g1bad.cfg; do
	[[ $line == *"$want"* ]] || fail "the error line lacks '$want': $line"
done
no_vscsi_trees "$db" || fail "a tree was written for g1bad: $(snap "$db" 2>&1 | head -5)"
xl destroy g1bad || fail "xl destroy g1bad"
msg=${line#*'[ERROR]'}
note "bad vscsi= line:${msg:0:240}"

# 5. A vhost removed from the running guest comes back with --once
#    (hot-plugged: the guest's xenbus probes the new device/vscsi/0).
stop_daemon
$XLV destroy-vhost "$GUEST_NAME" 0 || fail "xl-vscsi destroy-vhost"
guest_run -t 60 'for i in $(seq 1 250); do ls /sys/block | grep -q "^sd" || exit 0; sleep 0.2; done; exit 1' ||
	fail "the disk did not leave the guest"
t0=$(now)
out=$("$AA" --config-dir "$dir" --once 2>&1) || fail "--once (late vhost) failed: $(tail -3 <<<"$out")"
wait_xs "/local/domain/0/backend/vscsi/$d/0/state" 4 120 || fail "late vhost did not connect: $out"
dev=$(guest_disk) || exit 1 # guest_disk failed: its reason stands
round_trip "$dev"
note "late vhost hot-plugged into the running guest in $(since "$t0") s ($dev)"

# 6. xl destroy with the daemon running: every vscsi tree goes (P26).
start_daemon
t0=$(now)
xl destroy "$GUEST_NAME" || fail "xl destroy"
wait_for 60 no_vscsi_trees "$d" || fail "vscsi trees of domain $d left after xl destroy: $(snap "$d" 2>&1 | head -5)"
wait_for 30 grep -Eq "removed the vscsi trees of gone domains.*[^0-9]$d([^0-9]|\$)" "$log" || fail "no cleanup log line for $d: $(tail -3 "$log")"
note "xl destroy: vscsi trees of domain $d removed by the daemon in $(since "$t0") s"
stop_daemon
trap - EXIT
lio-xen-pvscsi.sh delete ram0 || fail "LIO cleanup"
dpkg -P govscsi >/dev/null || fail "dpkg -P govscsi"
