# shellcheck shell=bash
# host-install: the Debian package built by `make deb` (build/govscsi_*.deb,
# in /rig/bin) installs on the rig's dom0, which runs no systemd (the
# maintainer scripts must do nothing then): every file of `dpkg -L` is in
# place, the library is in ld.so's cache, the installed tools run from PATH
# and resolve their libraries, the installed daemon reads the shipped
# /etc/govscsi/autoattach.yaml, the man pages are found and render as an
# admin reads them (`man xl-vscsi`, `man xl-vscsi.cfg`), a reinstall works,
# `dpkg -r` removes everything but the conffiles and `dpkg -P` those too.
# timeout: 900 (two dpkg -i and a dpkg -r/-P: 30-90 s each under TCG on a busy host)
mapfile -t debs < <(ls /rig/bin/govscsi_*.deb 2>/dev/null)
((${#debs[@]} > 0)) || pending "no build/govscsi_*.deb (make deb)"
((${#debs[@]} == 1)) || fail "several packages in /rig/bin: ${debs[*]}"
deb=${debs[0]}
have man || fail "man-db is not in dom0 (DOM0_PKGS in tests/e2e/lib/common.sh)"
# only the system's PATH: /rig/bin holds the same binaries, unpackaged
sys_path=/usr/sbin:/usr/bin:/sbin:/bin
[[ ! -d /run/systemd/system ]] || fail "dom0 runs systemd: this scenario is about a host without it"
if dpkg -s govscsi >/dev/null 2>&1; then dpkg -P govscsi >/dev/null || fail "purging an old govscsi"; fi

t0=$(now)
out=$(dpkg -i "$deb" 2>&1) || fail "dpkg -i $(basename "$deb"): $(tail -3 <<<"$out")"
note "dpkg -i $(basename "$deb") in $(since "$t0") s (no systemd: maintainer scripts skip the units)"
[[ $(dpkg-query -W -f '${Status}' govscsi) == "install ok installed" ]] ||
	fail "govscsi status: $(dpkg-query -W -f '${Status}' govscsi)"

# every file the package lists is there; the ones an admin relies on are listed
mapfile -t files < <(dpkg -L govscsi)
for f in "${files[@]}"; do [[ -e $f ]] || fail "dpkg -L lists $f but it is missing"; done
for f in /usr/sbin/xl-vscsi /usr/sbin/vscsi-autoattach /usr/sbin/vscsi-backend \
	/usr/lib/govscsi/vscsi-hotplug /etc/xen/scripts/vscsi-govscsi /etc/govscsi/autoattach.yaml \
	/usr/include/govscsi.h /usr/share/man/man1/xl-vscsi.1.gz /usr/share/man/man5/xl-vscsi.cfg.5.gz \
	/usr/share/man/man8/vscsi-autoattach.8.gz /usr/share/man/man8/vscsi-backend.8.gz \
	/lib/systemd/system/vscsi-autoattach.service /lib/systemd/system/vscsi-backend.service; do
	printf '%s\n' "${files[@]}" | grep -qx -- "$f" || fail "the package does not ship $f"
done
lib=$(printf '%s\n' "${files[@]}" | grep '/libgovscsi\.so\.0$') || fail "no libgovscsi.so.0 in the package"
# (merged /usr: the cache may name it under /lib, the same file)
cached=$(ldconfig -p | awk '$1 == "libgovscsi.so.0" {print $NF; exit}')
[[ -n $cached && $cached -ef $lib ]] ||
	fail "libgovscsi.so.0 is not in ld.so's cache as $lib (ldconfig trigger): '$cached'; $(ldconfig -p | grep -c govscsi) matches"
for f in /usr/sbin/xl-vscsi /usr/sbin/vscsi-autoattach /usr/sbin/vscsi-backend /usr/lib/govscsi/vscsi-hotplug "$lib"; do
	out=$(ldd "$f" 2>&1)
	! grep -q 'not found' <<<"$out" || fail "ldd $f: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
done
dpkg-query -W -f '${Conffiles}\n' govscsi | grep -q '/etc/govscsi/autoattach.yaml' || fail "autoattach.yaml is not a conffile"
note "$(wc -l <<<"$(printf '%s\n' "${files[@]}")") paths from dpkg -L present; libgovscsi in ld.so.cache; all libraries resolve"

# the installed tools, from the system's PATH
[[ $(PATH=$sys_path command -v xl-vscsi) == /usr/sbin/xl-vscsi ]] || fail "xl-vscsi is not /usr/sbin/xl-vscsi in PATH"
out=$(PATH=$sys_path xl-vscsi help 2>&1) || fail "xl-vscsi help: $(tail -2 <<<"$out")"
grep -q 'scsi-attach' <<<"$out" || fail "xl-vscsi help does not list scsi-attach: $(head -3 <<<"$out")"
out=$(PATH=$sys_path vscsi-autoattach --help 2>&1) || fail "vscsi-autoattach --help: $(tail -2 <<<"$out")"
# the shipped configuration parses: one reconciliation pass against the
# live xenstore (domains without a config in /etc/xen are only logged).
# An explicit --config must exist (the default one may be absent), so this
# fails if the file is missing or does not parse; /nonexistent shows it can.
out=$(PATH=$sys_path timeout 60 vscsi-autoattach --config /etc/govscsi/autoattach.yaml --once 2>&1) ||
	fail "vscsi-autoattach --once with the shipped /etc/govscsi/autoattach.yaml: $(tail -3 <<<"$out")"
! out=$(PATH=$sys_path timeout 60 vscsi-autoattach --config /nonexistent.yaml --once 2>&1) ||
	fail "vscsi-autoattach accepted a missing --config: $out"

# man pages, as an admin reads them
for page in "1 xl-vscsi" "5 xl-vscsi.cfg" "8 vscsi-autoattach" "8 vscsi-backend"; do
	read -r sec name <<<"$page"
	set -- "$sec" "$name"
	err=$(result_file "man-$2.$1.txt")
	out=$(MANWIDTH=80 man -P cat "$1" "$2" 2>"$err.err") || fail "man $1 $2: $(cat "$err.err")"
	[[ -s $err.err ]] && fail "man $1 $2 warned: $(head -3 "$err.err")"
	rm -f "$err.err"
	printf '%s\n' "$out" >"$err"
	[[ $(man -w "$1" "$2") == "/usr/share/man/man$1/$2.$1.gz" ]] || fail "man -w $1 $2: $(man -w "$1" "$2" 2>&1)"
	if ! { grep -q '^NAME' <<<"$out" && grep -q "^ *$2 " <<<"$out" && grep -q '^SYNOPSIS' <<<"$out"; }; then
		fail "man $1 $2 rendered without NAME/SYNOPSIS: $(head -5 <<<"$out")"
	fi
done
out=$(MANWIDTH=80 man -P cat xl-vscsi.cfg 2>&1) || fail "man xl-vscsi.cfg (no section): $out"
grep -q 'vscsi' <<<"$out" || fail "man xl-vscsi.cfg rendered no vscsi text"
note "man xl-vscsi, xl-vscsi.cfg, vscsi-autoattach, vscsi-backend render ($(wc -l <<<"$out") lines for xl-vscsi.cfg(5))"

# reinstall over itself (postinst configure with the old version)
out=$(dpkg -i "$deb" 2>&1) || fail "reinstalling: $(tail -3 <<<"$out")"

# removal: everything but the conffiles goes; purge takes those too
t0=$(now)
out=$(dpkg -r govscsi 2>&1) || fail "dpkg -r govscsi: $(tail -3 <<<"$out")"
[[ $(dpkg-query -W -f '${Status}' govscsi) == "deinstall ok config-files" ]] ||
	fail "after dpkg -r: status $(dpkg-query -W -f '${Status}' govscsi)"
for f in "${files[@]}"; do
	[[ -d $f || $f == /etc/* ]] && continue
	[[ ! -e $f && ! -L $f ]] || fail "dpkg -r left $f"
done
! ldconfig -p | grep -q libgovscsi || fail "libgovscsi still in ld.so's cache after dpkg -r"
[[ -f /etc/govscsi/autoattach.yaml ]] || fail "dpkg -r removed the conffile /etc/govscsi/autoattach.yaml"
out=$(dpkg -P govscsi 2>&1) || fail "dpkg -P govscsi: $(tail -3 <<<"$out")"
! dpkg -s govscsi >/dev/null 2>&1 || fail "govscsi still known to dpkg after purge"
for f in /etc/govscsi /etc/xen/scripts/vscsi-govscsi /usr/lib/govscsi /usr/share/doc/govscsi; do
	[[ ! -e $f ]] || fail "dpkg -P left $f"
done
note "dpkg -r + dpkg -P in $(since "$t0") s: nothing left"
