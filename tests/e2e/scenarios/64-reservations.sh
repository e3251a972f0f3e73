# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# reservations: two guests share one LUN and fence each other with SCSI
# persistent reservations (sg_persist, as fence_scsi does), on our backend
# (one image file attached to both guests: one logical unit, two I_T
# nexuses) and on LIO (one rd_mcp backstore exported through two
# xen-pvscsi targets, one nexus each). For each: g1 and g2 register, g1
# reserves Write Exclusive; g2's writes get RESERVATION CONFLICT and its
# reads pass; READ KEYS / READ RESERVATION / READ FULL STATUS agree in both
# guests; g2 PREEMPT AND ABORTs g1, which then gets REGISTRATIONS PREEMPTED
# and RESERVATION CONFLICT on writes while g2 writes. Ours then: the state
# survives a vscsi-backend restart under the guests (the run file), and after a simulated
# reboot (the run directory emptied) only while APTPL was set.
# timeout: 1200
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
WA=naa.500140501234567b WB=naa.500140501234567c
img=$US_DIR/shared.img
cleanup() {
	for g in g1 g2; do
		xl-vscsi scsi-detach --timeout 30s "$g" 1:0:0:0 >/dev/null 2>&1
		xl-vscsi destroy-vhost --timeout 30s "$g" 1 >/dev/null 2>&1
	done
	lio-xen-pvscsi.sh delete prshared >/dev/null 2>&1
	us_cleanup
	xl destroy g2 >/dev/null 2>&1
	rm -f "$img"
}
trap cleanup EXIT
have vscsi-backend || pending "build/vscsi-backend not built"
type=$(us_backend_type)
[[ $type != vscsi ]] || pending "our backend type is vscsi: xen-scsiback would take our vhost too (P3)"
us_no_kernel_backend || fail "cannot unload xen-scsiback"
ensure_guest || fail "no guest g1"
if ! guest_running g2; then
	us_guest_start g2 || fail "second guest g2 did not start"
fi
rm -rf /run/govscsi/pr /var/lib/govscsi/pr

# run G CMD: CMD in guest G
run() { GUEST_NAME=$1 guest_run -t 60 "$2"; }
# status G DEV OP: sg_raw's exit status of one WRITE(10)/READ(10) of LBA 16,
# after at most two unit attentions (exit 6), which are reported to the
# first commands after a reservation change
status() {
	local cdb=(28 00 00 00 00 10 00 00 01 00) io="-r 512"
	[[ $3 == write ]] && cdb=(2a 00 00 00 00 10 00 00 01 00) io="-s 512 -i /tmp/blk"
	run "$1" "head -c 512 /dev/urandom >/tmp/blk; for i in 1 2 3; do sg_raw -o /dev/null $io $2 ${cdb[*]} >/dev/null 2>&1; r=\$?; [ \$r = 6 ] || break; done; echo \$r"
}
prout() { run "$1" "sg_persist -n --out $3 $2" >/dev/null 2>&1; }
# PERSISTENT RESERVE IN with sg_persist's default allocation length (8192,
# two pages) oopses dom0's LIO through xen-scsiback (Linux 6.1:
# target_scsi3_emulate_pr_in writes the data-in buffer through an unmapped
# address; seen on the rig): every PR IN here asks for 512 bytes.
prin() { run "$1" "sg_persist -n -l 512 --in $3 $2"; }
keys() { prin "$1" "$2" --read-keys | awk '/^ +0x[0-9a-f]+$/ {print $1}' | sort | tr '\n' ' '; }
holder() { prin "$1" "$2" --read-reservation | tr '\n' ' ' | sed -n 's/.*Key=\(0x[0-9a-f]*\).*type: *\([A-Za-z ,]*\).*/\1 \2/p' | sed 's/ *$//'; }

# fence BACKEND D1 D2: the shared sequence on g1's D1 and g2's D2
fence() {
	local be=$1 d1=$2 d2=$3 k h s
	prout g1 "$d1" "--register --param-sark=0x1111" || fail "$be: g1 REGISTER"
	prout g2 "$d2" "--register --param-sark=0x2222" || fail "$be: g2 REGISTER"
	k=$(keys g2 "$d2")
	[[ $k == "0x1111 0x2222 " ]] || fail "$be: READ KEYS in g2: '$k', want 0x1111 0x2222"
	prout g1 "$d1" "--reserve --param-rk=0x1111 --prout-type=1" || fail "$be: g1 RESERVE Write Exclusive"
	for g in g1 g2; do
		d=$d1
		[[ $g == g2 ]] && d=$d2
		h=$(holder "$g" "$d")
		[[ $h == "0x1111 Write Exclusive" ]] || fail "$be: READ RESERVATION in $g: '$h'"
	done
	s=$(prin g2 "$d2" --read-full-status)
	if (($(grep -c 'Key=0x' <<<"$s") != 2)) || ! grep -qi 'reservation holder' <<<"$s"; then
		fail "$be: READ FULL STATUS in g2: $(tr '\n' ' ' <<<"$s")"
	fi
	[[ $(status g2 "$d2" write) == 24 ]] || fail "$be: g2's write under g1's Write Exclusive: sg_raw exit $(status g2 "$d2" write), want 24 (RESERVATION CONFLICT)"
	[[ $(status g2 "$d2" read) == 0 ]] || fail "$be: g2's read under Write Exclusive failed"
	[[ $(status g1 "$d1" write) == 0 ]] || fail "$be: the holder g1 cannot write"
	note "$be: registered 0x1111 (g1) and 0x2222 (g2), g1 holds Write Exclusive: g2 writes conflict, reads pass; full status: $(grep -c 'Key=0x' <<<"$s") registrants"
	# g2 fences g1
	prout g2 "$d2" "--preempt-abort --param-rk=0x2222 --param-sark=0x1111 --prout-type=1" || fail "$be: g2 PREEMPT AND ABORT"
	s=$(run g1 "sg_raw -o /dev/null -s 512 -i /tmp/blk $d1 2a 00 00 00 00 10 00 00 01 00 2>&1")
	grep -qi 'Registrations preempted' <<<"$s" || note "$be: g1's first command after the preemption: $(grep -Ei 'status|sense' <<<"$s" | tr '\n' ' ')"
	[[ $(status g1 "$d1" write) == 24 ]] || fail "$be: the fenced g1 can still write"
	[[ $(status g2 "$d2" write) == 0 ]] || fail "$be: g2 cannot write after preempting"
	h=$(holder g1 "$d1")
	[[ $h == "0x2222 Write Exclusive" && $(keys g1 "$d1") == "0x2222 " ]] || fail "$be: after PREEMPT AND ABORT: holder '$h', keys '$(keys g1 "$d1")'"
	note "$be: g2 PREEMPT AND ABORT: g1 unregistered and fenced (writes conflict), g2 holds the reservation and writes"
}

# --- ours: one image file, attached to both guests
mkdir -p "$US_DIR"
rm -f "$img"
truncate -s 64M "$img" || fail "cannot create $img"
us_daemon_start "$type" || fail "vscsi-backend did not start"
# The vhost is made and removed with the disk, so each restart starts from
# a fresh frontend; it is vhost 0 every time, so the nexus names
# (vm:<uuid>/vhost:0) stay the same.
attach_ours() {
	for g in g1 g2; do
		out=$(us_attach "$g" "file:$img" 0:0:0:0 2>&1) || fail "scsi-attach $g: $out"
		us_guest_dev GOVSCSI "$g" >/dev/null || fail "$g shows no GOVSCSI disk"
	done
	o1=$(us_guest_sg GOVSCSI g1) || fail "no GOVSCSI sg node in g1"
	o2=$(us_guest_sg GOVSCSI g2) || fail "no GOVSCSI sg node in g2"
}
detach_ours() {
	for g in g1 g2; do
		us_detach "$g" 0:0:0:0 >/dev/null 2>&1 || fail "scsi-detach $g"
		xl-vscsi destroy-vhost --timeout 30s "$g" 0 >/dev/null 2>&1 || fail "destroy-vhost $g 0"
	done
}
attach_ours
n1=$(run g1 "sg_vpd -p di $o1" | grep -Eo '0x3[0-9a-f]{15}' | head -1)
n2=$(run g2 "sg_vpd -p di $o2" | grep -Eo '0x3[0-9a-f]{15}' | head -1)
[[ -n $n1 && $n1 == "$n2" ]] || fail "the guests see different NAA names for one file: '$n1' '$n2'"
fence ours "$o1" "$o2"
ls /run/govscsi/pr/*.json >/dev/null 2>&1 || fail "no reservation state file in /run/govscsi/pr"
grep -q '"holder": "vm:' /run/govscsi/pr/*.json || fail "state file names no vm: holder: $(cat /run/govscsi/pr/*.json)"

# restart under the guests (SIGTERM hands over, the disks stay): the next
# process finds the reservation (the run file, no APTPL)
us_daemon_stop || fail "daemon did not stop cleanly"
us_daemon_start "$type" || fail "vscsi-backend did not restart"
h=$(holder g1 "$o1")
[[ $h == "0x2222 Write Exclusive" ]] || fail "after a restart: reservation '$h', want 0x2222 Write Exclusive"
[[ $(status g1 "$o1" write) == 24 ]] || fail "after a restart g1 is not fenced any more"
[[ $(status g2 "$o2" write) == 0 ]] || fail "after a restart the holder g2 cannot write"
note "ours: vscsi-backend restarted under both guests (handover): g2's reservation and g1's fencing are still there"

# a reboot (the run directory is tmpfs) without APTPL: the state is gone
detach_ours
us_daemon_stop || fail "daemon did not stop cleanly"
! compgen -G '/var/lib/govscsi/pr/*.json' >/dev/null || fail "an APTPL file without APTPL: $(find /var/lib/govscsi/pr -name '*.json')"
rm -rf /run/govscsi/pr
us_daemon_start "$type" || fail "vscsi-backend did not restart"
attach_ours
[[ -z $(keys g2 "$o2") ]] || fail "without APTPL the registrations came back after a simulated reboot: $(keys g2 "$o2")"
# ... with APTPL: it comes back
prout g2 "$o2" "--register --param-sark=0x2222 --param-aptpl" || fail "g2 REGISTER with APTPL"
prout g2 "$o2" "--reserve --param-rk=0x2222 --prout-type=3" || fail "g2 RESERVE Exclusive Access"
caps=$(prin g2 "$o2" --report-capabilities)
grep -Eq 'PTPL_A\): *1' <<<"$caps" || fail "REPORT CAPABILITIES does not show PTPL_A: $(tr '\n' ' ' <<<"$caps")"
detach_ours
us_daemon_stop || fail "daemon did not stop cleanly"
ls /var/lib/govscsi/pr/*.json >/dev/null 2>&1 || fail "no APTPL file in /var/lib/govscsi/pr"
rm -rf /run/govscsi/pr
us_daemon_start "$type" || fail "vscsi-backend did not restart"
attach_ours
h=$(holder g1 "$o1")
[[ $h == "0x2222 Exclusive Access" ]] || fail "after a simulated reboot with APTPL: reservation '$h'"
[[ $(status g1 "$o1" read) == 24 ]] || fail "g1 reads through g2's Exclusive Access reservation"
note "ours: with APTPL the Exclusive Access reservation survives an emptied /run (a reboot); without it nothing came back"
prout g2 "$o2" "--clear --param-rk=0x2222" || fail "g2 CLEAR"
if compgen -G '/run/govscsi/pr/*.json' >/dev/null || compgen -G '/var/lib/govscsi/pr/*.json' >/dev/null; then
	fail "state files left after CLEAR: $(find /run/govscsi/pr /var/lib/govscsi/pr -name '*.json' | tr '\n' ' ')"
fi
detach_ours

# --- LIO: one backstore, one target (nexus) per guest
lio-xen-pvscsi.sh delete prshared >/dev/null 2>&1
lio-xen-pvscsi.sh create prshared ram:64M $WA 0 >/dev/null || fail "LIO target A"
lio-xen-pvscsi.sh create prshared ram:64M $WB 0 >/dev/null || fail "LIO target B over the same backstore"
out=$(xl-vscsi scsi-attach --flavour kernel --timeout 60s g1 "$WA:0" 1:0:0:0 2>&1) || fail "kernel attach g1: $out"
out=$(xl-vscsi scsi-attach --flavour kernel --timeout 60s g2 "$WB:0" 1:0:0:0 2>&1) || fail "kernel attach g2: $out"
for _ in $(seq 1 150); do
	k1=$(us_guest_sg LIO-ORG g1) && k2=$(us_guest_sg LIO-ORG g2) && break
	sleep 0.2
done
[[ -n $k1 && -n $k2 ]] || fail "no LIO sg node in a guest"
fence LIO "$k1" "$k2"
