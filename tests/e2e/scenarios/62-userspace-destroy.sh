# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# userspace-destroy: `xl destroy` of a guest while fio runs in it against the
# userspace backend (a file LUN and a RAM LUN). Afterwards the daemon, still
# running, holds no grant mapping (no /dev/xen/gntdev mapping in its
# /proc/<pid>/maps; there was one per ring before), no descriptor of the
# backing file, and its @releaseDomain clean-up removed the domain's backend
# tree. The daemon then serves a new guest.
# timeout: 1500
# shellcheck source=tests/e2e/dom0/helpers-userspace.sh
. /rig/helpers-userspace.sh
trap us_cleanup EXIT
have vscsi-backend || pending "build/vscsi-backend not built"
type=$(us_backend_type)
[[ -n $type ]] || pending "xl-vscsi apply --flavour userspace --dry-run --json gives no backend vhost"
us_no_kernel_backend || fail "cannot unload xen-scsiback"
ensure_guest || fail "no guest"
g=$GUEST_NAME
d=$(guest_domid) || fail "no domid"

# the vhost's backend directory, from the project's own writes (never typed here)
printf 'name = "%s"\nvscsi = [ "ram:1M,0:0:0:0" ]\n' "$g" >/tmp/destroy.cfg
xl-vscsi apply --flavour userspace --dry-run --json /tmp/destroy.cfg "$d" >/tmp/destroy.json ||
	fail "xl-vscsi apply --dry-run --json failed"
be=$(jq -r '[.[] | select(.path | endswith("/frontend-id"))][0].path | rtrimstr("/frontend-id")' /tmp/destroy.json)
betree=${be%/*}
[[ $betree == /* ]] || fail "no backend vhost in the writes"

mkdir -p "$US_DIR"
img=$US_DIR/destroy.img
rm -f "$img"
truncate -s 128M "$img" || fail "cannot create $img"
us_daemon_start "$type" || fail "vscsi-backend did not start"
pid=$(us_pid)
out=$(us_attach "$g" "file:$img" 0:0:0:0 2>&1) || fail "scsi-attach file LUN: $out"
out=$(us_attach "$g" ram:64M 0:0:0:1 2>&1) || fail "scsi-attach RAM LUN: $out"
devs=$(us_guest_devs GOVSCSI)
for _ in $(seq 1 150); do
	(($(grep -c . <<<"$devs") == 2)) && break
	sleep 0.2
	devs=$(us_guest_devs GOVSCSI)
done
(($(grep -c . <<<"$devs") == 2)) || fail "guest does not show 2 GOVSCSI disks: $devs"
maps() { grep -c /dev/xen/gntdev "/proc/$pid/maps"; }
imgfds() { find "/proc/$pid/fd" -lname "$img" 2>/dev/null | wc -l; }
m0=$(maps) f0=$(imgfds)
note "connected: $m0 gntdev mapping(s), $f0 descriptor(s) of $img; backend tree $betree exists: $(xenstore-exists "$betree" && echo yes)"
((m0 >= 1)) || fail "no gntdev mapping while connected (the ring should be mapped): the check below would prove nothing"
((f0 >= 1)) || fail "no descriptor of $img while attached: the check below would prove nothing"

# fio on both LUNs in the guest, long enough to be killed mid-I/O
devlist=$(awk '{print $1}' <<<"$devs" | paste -sd:)
(guest_run -t 600 "fio --name=busy --filename=$devlist --direct=1 --ioengine=libaio --rw=randrw --bs=64k --iodepth=16 --time_based --runtime=300" >/dev/null 2>&1) &
bg=$!
# I/O is flowing: the command counters grow
c0=$(us_stats | jq '[.luns[].commands] | add')
busy() { (($(us_stats | jq '[.luns[].commands] | add') > c0 + 500)); }
wait_for 120 busy ||
	fail "fio did not start I/O"
st=$(us_stats)
note "mid-I/O: $(jq -c '[.luns[] | {pdev, commands, in_flight}]' <<<"$st")"

xl destroy "$g" || fail "xl destroy failed"
kill "$bg" 2>/dev/null # its guest_run would poll the dead guest until its timeout
t0=$(now)
gone() { ! xenstore-exists "$betree"; }
wait_for 60 gone || fail "backend tree $betree still there 60 s after xl destroy"
note "backend tree removed $(since "$t0") s after xl destroy"
nomaps() { (($(maps) == 0)); }
nofds() { (($(imgfds) == 0)); }
wait_for 30 nomaps ||
	fail "daemon still has $(maps) gntdev mapping(s) after the domain died"
wait_for 30 nofds ||
	fail "daemon still has $(imgfds) descriptor(s) of $img"
kill -0 "$pid" || fail "daemon died"
st=$(us_stats) || fail "stats socket after destroy"
jq -e '(.luns | length) == 0 and ((.vhosts // []) | length) == 0' <<<"$st" >/dev/null ||
	fail "stats still list LUNs/vhosts: $(jq -c . <<<"$st")"
note "after xl destroy: 0 gntdev mappings, 0 descriptors of the image, no LUN or vhost left, daemon alive"
if grep -Eiq 'panic|goroutine [0-9]+ \[' "$(result_file "vscsi-backend-$RIG_SCENARIO.log")"; then
	fail "daemon log has a panic"
fi

# the daemon still serves a new guest
guest_start || fail "new guest did not start"
out=$(us_attach "$g" ram:16M 0:0:0:0 2>&1) || fail "scsi-attach after destroy: $out"
dev=$(us_guest_dev GOVSCSI) || fail "new guest shows no GOVSCSI disk"
guest_run "dd if=$dev of=/dev/null bs=64k iflag=direct 2>&1" >/dev/null || fail "I/O on the new guest"
us_detach "$g" 0:0:0:0 >/dev/null 2>&1 || fail "scsi-detach"
us_daemon_stop || fail "daemon did not stop cleanly"
rm -f "$img"
