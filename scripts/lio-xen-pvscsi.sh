#!/bin/bash
# lio-xen-pvscsi.sh: prepare LIO (the kernel SCSI target) for Linux's PV SCSI
# kernel backend, xen-scsiback, through configfs only (no targetcli needed).
#
#   lio-xen-pvscsi.sh create NAME BACKING [WWN] [LUN] [--alias H:C:T]
#   lio-xen-pvscsi.sh delete NAME
#   lio-xen-pvscsi.sh list
#
# create: a backstore NAME and, in the xen-pvscsi target WWN (portal group 1),
#   LUN number LUN (default 0) backed by it, plus the target's nexus, without
#   which xen-scsiback refuses the LUN. BACKING is one of
#     /dev/BLOCKDEV     iblock backstore on a block device
#     PATH              fileio backstore on an existing regular file
#     PATH:SIZE         fileio, the file created sparse with SIZE if missing
#     ram:SIZE          rd_mcp ramdisk backstore (SIZE like 64M, 1G, 4096K)
#     pscsi:H:C:T:L     pscsi pass-through of the SCSI device H:C:T:L (any
#                       type: a tape drive, a medium changer, a disk)
#   WWN defaults to an naa. name derived from NAME (naa.5001405 + 9 hex digits).
#   --alias H:C:T sets the target's alias so a guest config can name the LUN
#   as p-dev "H:C:T:LUN" instead of "WWN:LUN".
#   The xenstore p-dev of the LUN is printed: "p-dev WWN:LUN".
#   Running create again with the same arguments changes nothing (idempotent);
#   a NAME that exists with another backing is an error.
# delete: the LUN(s) using backstore NAME, then NAME; a target left without
#   LUNs is removed too (with its nexus). Deleting a missing NAME is not an error.
# list: one line per LUN: NAME TYPE BACKING p-dev=WWN:LUN [alias=H:C:T].
#
# Needs root, configfs and the modules target_core_mod, target_core_file /
# target_core_iblock and xen-scsiback (loaded on demand). Do not use it while a
# userspace vscsi backend owns the backend/vscsi nodes: both would claim them.
set -euo pipefail

CFG=${LIO_CONFIGFS:-/sys/kernel/config}/target
FABRIC=$CFG/xen-pvscsi
TPG=tpgt_1
prog=$(basename "$0")

die() {
	echo "$prog: $*" >&2
	exit 1
}
usage() {
	sed -n '3,6p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# size_bytes SIZE: 64M -> 67108864; dies naming the token otherwise.
size_bytes() {
	local s=$1 n u
	[[ $s =~ ^([0-9]+)([KkMmGgTt]?)$ ]] || die "bad size '$s' (want e.g. 512M, 1G, 4096K or bytes)"
	n=${BASH_REMATCH[1]}
	u=${BASH_REMATCH[2]}
	case $u in
	K | k) n=$((n << 10)) ;; M | m) n=$((n << 20)) ;; G | g) n=$((n << 30)) ;; T | t) n=$((n << 40)) ;;
	esac
	((n > 0)) || die "bad size '$s': must be more than 0"
	echo "$n"
}

default_wwn() { echo "naa.5001405$(printf %s "$1" | md5sum | cut -c1-9)"; }

# nexus_for WWN: the initiator-side name of the I_T nexus, distinct from WWN.
nexus_for() { echo "naa.5001405$(printf 'nexus-%s' "$1" | md5sum | cut -c1-9)"; }

setup() {
	[[ $(id -u) == 0 ]] || die "needs root"
	if [[ ! -d $CFG ]]; then
		modprobe configfs 2>/dev/null || true
		mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config 2>/dev/null || true
		modprobe target_core_mod || die "cannot load target_core_mod"
	fi
	[[ -d $CFG ]] || die "LIO configfs not found at $CFG"
	if [[ ! -d $FABRIC ]]; then
		modprobe xen-scsiback || die "cannot load xen-scsiback (the kernel PV SCSI backend)"
		mkdir -p "$FABRIC" || die "cannot create $FABRIC"
	fi
	# LIO keeps persistent reservation state (APTPL) in <dbroot>/pr and
	# fails every PERSISTENT RESERVE OUT with LOGICAL UNIT COMMUNICATION
	# FAILURE (02/08/00) when it cannot write there; targetcli's package
	# creates the directory, a configfs-only set-up must too.
	local dbroot
	dbroot=$(cat "$CFG/dbroot" 2>/dev/null || echo /var/target)
	mkdir -p "$dbroot/pr" || die "cannot create $dbroot/pr (LIO's persistent reservation files)"
}

# find_backstore NAME: the configfs dir of backstore NAME (any HBA), or nothing.
find_backstore() {
	local d
	for d in "$CFG"/core/*/"$1"; do
		[[ -d $d ]] && { echo "$d"; return 0; }
	done
	return 1
}

# backstore_desc DIR: "TYPE BACKING" as list prints it.
backstore_desc() {
	local d=$1 hba info
	hba=$(basename "$(dirname "$d")")
	info=$(cat "$d/info" 2>/dev/null || true)
	case $hba in
	fileio_*) echo "fileio $(sed -n 's/.*File: \([^ ]*\).*/\1/p' <<<"$info" | head -1)" ;;
	iblock_*) echo "iblock $(cat "$d/udev_path" 2>/dev/null)" ;;
	rd_mcp_*) echo "ramdisk $(($(sed -n 's/.*PAGES\/PAGE_SIZE: \([0-9]*\)\*.*/\1/p' <<<"$info" | head -1) * 4))K" ;;
	pscsi_*)
		# LIO's info names each part ("Host ID: 2 ... Channel ID: 0 Target ID: 0 LUN: 1")
		local k parts=()
		for k in "Host ID" "Channel ID" "Target ID" "LUN"; do
			parts+=("$(tr '\n' ' ' <<<"$info" | sed -n "s/.*$k: \([0-9]*\).*/\1/p")")
		done
		echo "pscsi $(IFS=:; echo "${parts[*]}")"
		;;
	*) echo "${hba%_*} ?" ;;
	esac
}

# make_backstore NAME BACKING: create (or verify) the backstore; prints its dir.
make_backstore() {
	local name=$1 b=$2 d hba ctl path size want
	case $b in
	ram:*)
		size=$(size_bytes "${b#ram:}")
		((size % 4096 == 0)) || die "bad size '${b#ram:}': a ramdisk is a whole number of 4 KiB pages"
		hba=rd_mcp_0 ctl="rd_pages=$((size / 4096))" want="ramdisk $((size / 1024))K"
		;;
	pscsi:*)
		[[ ${b#pscsi:} =~ ^([0-9]+):([0-9]+):([0-9]+):([0-9]+)$ ]] || die "bad pscsi address '${b#pscsi:}' (want H:C:T:L)"
		[[ -d /sys/bus/scsi/devices/${b#pscsi:} ]] || die "no SCSI device ${b#pscsi:} (lsscsi lists them)"
		hba=pscsi_0 want="pscsi ${b#pscsi:}"
		ctl="scsi_host_id=${BASH_REMATCH[1]},scsi_channel_id=${BASH_REMATCH[2]},scsi_target_id=${BASH_REMATCH[3]},scsi_lun_id=${BASH_REMATCH[4]}"
		;;
	/dev/*)
		[[ -b $b ]] || die "'$b' is not a block device"
		hba=iblock_0 ctl="udev_path=$b" want="iblock $b"
		;;
	*)
		path=$b
		if [[ $b =~ ^(.+):([0-9]+[KkMmGgTt]?)$ ]]; then
			path=${BASH_REMATCH[1]}
			size=$(size_bytes "${BASH_REMATCH[2]}")
			if [[ ! -e $path ]]; then
				mkdir -p "$(dirname "$path")"
				truncate -s "$size" "$path" || die "cannot create '$path'"
			fi
		fi
		[[ $path == /* ]] || die "backing '$b': use an absolute path, /dev/..., or ram:SIZE"
		[[ -f $path ]] || die "backing file '$path' does not exist (PATH:SIZE creates it)"
		size=$(stat -c %s "$path")
		((size > 0)) || die "backing file '$path' is empty"
		hba=fileio_0 ctl="fd_dev_name=$path,fd_dev_size=$size" want="fileio $path"
		;;
	esac
	if d=$(find_backstore "$name"); then
		[[ $(backstore_desc "$d") == "$want" ]] ||
			die "backstore '$name' exists as '$(backstore_desc "$d")', not '$want'"
		echo "$d"
		return 0
	fi
	d=$CFG/core/$hba/$name
	mkdir -p "$d" || die "cannot create backstore dir $d"
	# iblock: control's udev_path= is the iblock's own; LIO's udev_path
	# attribute (what `list` and the toolstack's /dev resolution read) is
	# only set when written, as targetcli does. Writable before any export.
	if ! echo "$ctl" >"$d/control" || { [[ $hba == iblock_* ]] && ! printf %s "$b" >"$d/udev_path"; } ||
		! echo 1 >"$d/enable"; then
		rmdir "$d" 2>/dev/null || true
		die "LIO refused backstore '$name' ($ctl)"
	fi
	echo "$d"
}

cmd_create() {
	local name="" backing="" wwn="" lun="" alias="" a pos=()
	while (($#)); do
		a=$1
		shift
		case $a in
		--alias) (($#)) || die "--alias needs H:C:T"; alias=$1; shift ;;
		--alias=*) alias=${a#--alias=} ;;
		-*) die "unknown option '$a'" ;;
		*) pos+=("$a") ;;
		esac
	done
	((${#pos[@]} >= 2 && ${#pos[@]} <= 4)) || usage
	name=${pos[0]} backing=${pos[1]} wwn=${pos[2]:-} lun=${pos[3]:-0}
	[[ $name =~ ^[A-Za-z0-9_-]{1,64}$ ]] || die "bad name '$name' (letters, digits, _ and -)"
	[[ -n $wwn ]] || wwn=$(default_wwn "$name")
	# xen-scsiback accepts naa. names only, shorter than 32 characters
	[[ $wwn =~ ^naa\.[0-9a-fA-F]{16}$ ]] || die "bad WWN '$wwn' (want naa. and 16 hex digits)"
	[[ $lun =~ ^[0-9]{1,5}$ ]] || die "bad LUN '$lun' (a number)"
	lun=$((10#$lun))
	[[ -z $alias || $alias =~ ^[0-9]+:[0-9]+:[0-9]+$ ]] || die "bad alias '$alias' (want H:C:T)"
	setup
	local bs t=$FABRIC/$wwn/$TPG l
	bs=$(make_backstore "$name" "$backing")
	l=$t/lun/lun_$lun
	mkdir -p "$t/lun" || die "cannot create target $wwn"
	if [[ -d $l ]]; then
		local cur
		cur=$(find "$l" -maxdepth 1 -type l -printf '%l\n' | head -1)
		[[ $(basename "$cur") == "$name" ]] ||
			die "LUN $lun of $wwn is already backed by '$(basename "$cur")', not '$name'"
	else
		mkdir "$l" || die "cannot create LUN $lun in $wwn"
		ln -s "$bs" "$l/port_$name" || { rmdir "$l"; die "cannot link '$name' to LUN $lun of $wwn"; }
	fi
	local nx
	nx=$(cat "$t/nexus" 2>/dev/null || true)
	if [[ -z $nx || $nx == NULL ]]; then
		nexus_for "$wwn" >"$t/nexus" || die "cannot set the nexus of $wwn"
	fi
	if [[ -n $alias ]]; then
		echo "$alias" >"$t/param/alias" || die "cannot set alias '$alias' on $wwn"
	fi
	echo "p-dev $wwn:$lun"
}

cmd_delete() {
	(($# == 1)) || usage
	local name=$1 l t link
	[[ $name =~ ^[A-Za-z0-9_-]{1,64}$ ]] || die "bad name '$name' (letters, digits, _ and -)"
	[[ -d $CFG ]] || return 0
	for link in "$FABRIC"/*/tpgt_*/lun/lun_*/*; do
		[[ -L $link && $(basename "$(readlink "$link")") == "$name" ]] || continue
		l=$(dirname "$link")
		t=$(dirname "$(dirname "$l")")
		rm "$link" || die "cannot unlink '$name' from $l (in use by a guest?)"
		rmdir "$l" || die "cannot remove $l"
		if [[ -z $(ls "$t/lun") ]]; then
			echo NULL >"$t/nexus" 2>/dev/null || true
			rmdir "$t" || die "cannot remove $t (in use by a guest?)"
			rmdir "$(dirname "$t")" || die "cannot remove target $(dirname "$t")"
		fi
	done
	local d
	if d=$(find_backstore "$name"); then
		rmdir "$d" || die "cannot remove backstore $d (still exported?)"
		rmdir "$(dirname "$d")" 2>/dev/null || true   # the HBA, once empty
	fi
}

cmd_list() {
	[[ -d $FABRIC ]] || return 0
	local link l t wwn bs al
	for link in "$FABRIC"/*/tpgt_*/lun/lun_*/*; do
		[[ -L $link ]] || continue
		l=$(dirname "$link")
		t=$(dirname "$(dirname "$l")")
		wwn=$(basename "$(dirname "$t")")
		bs=$(readlink -f "$link")
		al=$(cat "$t/param/alias" 2>/dev/null || true)
		echo "$(basename "$bs") $(backstore_desc "$bs") p-dev=$wwn:${l##*lun_}${al:+ alias=$al}"
	done
}

case ${1:-} in
create) shift; cmd_create "$@" ;;
delete) shift; cmd_delete "$@" ;;
list) shift; cmd_list "$@" ;;
*) usage ;;
esac
