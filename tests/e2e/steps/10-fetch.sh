# shellcheck shell=bash
# Step "fetch": download (not install) the Xen hypervisor and the Debian kernel
# and unpack them under $RIG_DIR. The host's /boot is never touched.
#
# Outputs: xen.elf32 (multiboot ELF32, QEMU -kernel loads it), vmlinuz (the
# guest kernel), vmlinux (the same kernel as plain ELF for dom0: saves Xen the
# in-hypervisor decompression), kern/ (the package tree, modules depmod'ed).

# apt_refresh: apt-get update unless the lists were refreshed in the last
# RIG_APT_MAX_AGE seconds (default 6 h). The kernel package name is read only
# afterwards (docs/testing.md, "What it builds").
apt_refresh() {
	local stamp="$RIG_DIR/apt-updated" max=${RIG_APT_MAX_AGE:-21600}
	if [[ -f $stamp ]] && (($(date +%s) - $(stat -c %Y "$stamp") < max)); then
		return 0
	fi
	local t0=$SECONDS
	DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
	touch "$stamp"
	log "apt-get update done in $((SECONDS - t0)) s"
}

fetch_key() {
	local k
	k=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
	[[ -n $k ]] || die "cannot resolve the kernel package behind linux-image-amd64"
	echo "$k" >"$RIG_DIR/kpkg.next"
	hash_of "$E2E/steps/10-fetch.sh" "$k=$(pkg_version "$k")" \
		"xen=$(pkg_version "xen-hypervisor-$XENVER-amd64")"
}

do_fetch() {
	local k kv off
	k=$(cat "$RIG_DIR/kpkg.next")
	kv=${k#linux-image-}
	rm -rf "$RIG_DIR/debs" "$RIG_DIR/xenhv" "$RIG_DIR/kern"
	mkdir -p "$RIG_DIR/debs" "$RIG_DIR/xenhv" "$RIG_DIR/kern"
	local t0=$SECONDS
	(cd "$RIG_DIR/debs" && apt-get download -q "xen-hypervisor-$XENVER-amd64" "$k" 2>&1 | grep -v unsandboxed) || true
	ls "$RIG_DIR"/debs/xen-hypervisor-*.deb "$RIG_DIR/debs/${k}"_*.deb >/dev/null || die "download failed"
	log "fetch: download done in $((SECONDS - t0)) s ($(du -sh "$RIG_DIR/debs" | cut -f1))"
	dpkg -x "$RIG_DIR"/debs/xen-hypervisor-*.deb "$RIG_DIR/xenhv"
	dpkg -x "$RIG_DIR/debs/${k}"_*.deb "$RIG_DIR/kern"
	zcat "$RIG_DIR/xenhv/boot/xen-$XENVER-amd64.gz" >"$RIG_DIR/xen.elf32"
	cp "$RIG_DIR/kern/boot/vmlinuz-$kv" "$RIG_DIR/vmlinuz"
	depmod -b "$RIG_DIR/kern" "$kv"
	# the bzImage's payload is xz: find its magic and unpack the ELF
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$RIG_DIR/vmlinuz" | head -1 | cut -d: -f1)
	[[ -n $off ]] || die "no xz payload in vmlinuz"
	tail -c +$((off + 1)) "$RIG_DIR/vmlinuz" | xz -dc >"$RIG_DIR/vmlinux" 2>/dev/null || true
	cmp -s -n 4 <(printf '\177ELF') "$RIG_DIR/vmlinux" || die "vmlinux is not an ELF"
	mv "$RIG_DIR/kpkg.next" "$RIG_DIR/kpkg"
	log "fetch: $k, xen $(pkg_version "xen-hypervisor-$XENVER-amd64")"
}
