# shellcheck shell=bash disable=SC2016 # guest_run takes guest-side shell code in single quotes
# lio-kernel-backend: scripts/lio-xen-pvscsi.sh prepares LIO for xen-scsiback
# (fileio + ramdisk backstores, LUNs, nexus, alias), is idempotent, names bad
# tokens in its errors, and tears everything down again; checked in configfs.
# timeout: 600
lio=/rig/bin/lio-xen-pvscsi.sh
C=/sys/kernel/config/target
W=naa.5001405012345678
T=$C/xen-pvscsi/$W/tpgt_1

# a clean slate, whatever an earlier scenario left
{ $lio delete disk0 && $lio delete ram0; } || fail "cleaning up before the test"
out=$($lio create disk0 /var/lib/rig/disk0.img:64M $W 0 2>&1) || fail "create disk0: $out"
[[ $out == "p-dev $W:0" ]] || fail "create disk0 printed '$out'"
[[ -d /sys/module/xen_scsiback ]] || fail "xen-scsiback not loaded by create"
[[ $(cat $C/core/fileio_0/disk0/enable) == 1 ]] || fail "fileio backstore disk0 not enabled"
[[ $(readlink -f "$(find $T/lun/lun_0 -maxdepth 1 -type l)") == "$(readlink -f $C/core/fileio_0/disk0)" ]] ||
	fail "lun_0 is not linked to disk0"
nexus=$(cat $T/nexus)
[[ $nexus == naa.* ]] || fail "no nexus on $W (got '$nexus')"
[[ $(stat -c %s /var/lib/rig/disk0.img) == $((64 << 20)) ]] || fail "backing file has the wrong size"

# idempotent: the same create again changes nothing
$lio create disk0 /var/lib/rig/disk0.img:64M $W 0 >/dev/null || fail "second create disk0 failed"
[[ $(find $T/lun/lun_0 -maxdepth 1 -type l | wc -l) == 1 && $(cat $T/nexus) == "$nexus" ]] ||
	fail "second create changed the LUN or nexus"

out=$($lio create ram0 ram:32M $W 1 --alias 0:0:7 2>&1) || fail "create ram0: $out"
[[ $out == "p-dev $W:1" ]] || fail "create ram0 printed '$out'"
[[ $(cat $C/core/rd_mcp_0/ram0/enable) == 1 ]] || fail "ramdisk backstore ram0 not enabled"
[[ $(cat $T/param/alias) == 0:0:7 ]] || fail "alias not set (got '$(cat $T/param/alias)')"

list=$($lio list) || fail "list failed"
note "list: $(tr '\n' ';' <<<"$list")"
grep -qx "disk0 fileio /var/lib/rig/disk0.img p-dev=$W:0 alias=0:0:7" <<<"$list" || fail "list lacks disk0: $list"
grep -qx "ram0 ramdisk 32768K p-dev=$W:1 alias=0:0:7" <<<"$list" || fail "list lacks ram0: $list"

# bad input: non-zero exit and the bad token named
expect_error() { # token args...
	local tok=$1 out
	shift
	if out=$($lio "$@" 2>&1); then fail "'$*' succeeded"; fi
	grep -qF -- "$tok" <<<"$out" || fail "error for '$*' does not name '$tok': $out"
}
expect_error 12x create bad0 ram:12x
expect_error disk0 create disk0 ram:16M $W 0
expect_error naa.123 create bad1 ram:16M naa.123
expect_error 'a:b' create bad2 ram:16M $W 2 --alias a:b
expect_error /nonexistent create bad3 /nonexistent
[[ -z $(find $C/core -maxdepth 2 -name 'bad*') ]] || fail "a failed create left a backstore behind"

# tear down: LUN 0 first (the target stays), then the last LUN removes the target
$lio delete disk0 || fail "delete disk0 failed"
[[ ! -e $T/lun/lun_0 && ! -e $C/core/fileio_0/disk0 ]] || fail "disk0 still in configfs after delete"
[[ -d $T/lun/lun_1 ]] || fail "deleting disk0 removed ram0's LUN"
$lio delete ram0 || fail "delete ram0 failed"
[[ ! -e $C/xen-pvscsi/$W && ! -e $C/core/rd_mcp_0/ram0 ]] || fail "target or ram0 left after the last delete"
$lio delete ram0 || fail "deleting a missing name is an error"
[[ -z $($lio list) ]] || fail "list not empty after teardown"
rm -f /var/lib/rig/disk0.img
