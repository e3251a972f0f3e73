# shellcheck shell=bash
# Step "initramfs": two small initramfs images.
#  initrd-dom0.img : busybox + the virtio/ext4 modules (=m in Debian's config)
#                    to mount the dom0 root image, then switch_root to /rig/init.sh.
#  initrd-guest.img: the PV guest's whole root: busybox, the SCSI frontend
#                    modules, and the test userland (fio, sg3-utils, lsscsi,
#                    e2fsprogs, xenstore tools) copied from the dom0 root with
#                    exactly the shared libraries they load (ldd closure).

# Guest userland: programs (paths inside the dom0 root) and modules.
GUEST_PROGS=(/usr/bin/fio /usr/bin/lsscsi /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/bin/xenstore
	/usr/bin/mt-st /usr/sbin/mtx /usr/sbin/tapeinfo /usr/sbin/loaderinfo)
GUEST_MODS=(xen-scsifront sd_mod sg ext4 st ch)
DOM0_EARLY_MODS=(virtio_pci virtio_blk ext4)

initramfs_key() {
	hash_of "$E2E/steps/30-initramfs.sh" "$E2E/dom0/initramfs-init.sh" "$E2E/guest/init.sh" \
		"$(step_key dom0root)" "$(dpkg-query -W busybox-static 2>/dev/null)"
}

# mod_files MODULE...: the .ko files to insmod, dependencies first.
mod_files() {
	local m
	for m in "$@"; do
		modprobe -d "$RIG_DIR/kern" -S "$(kver)" --show-depends "$m" | awk '$1=="insmod"{print $2}'
	done | awk '!seen[$0]++'
}

# put_mods DIR MODULE...: copy the modules + a load order file into DIR/mods.
put_mods() {
	local d=$1 f
	shift
	mkdir -p "$d/mods"
	: >"$d/mods/order"
	for f in $(mod_files "$@"); do
		cp "$f" "$d/mods/"
		basename "$f" >>"$d/mods/order"
	done
}

# pack DIR OUT [COMPRESSOR]: newc cpio, compressed (gzip -1 by default). The
# guest kernel unpacks it under TCG, where decompression speed matters most.
pack() { (cd "$1" && find . | cpio -o -H newc --quiet | ${3:-gzip -1}) >"$2"; }

# merged-/usr skeleton like Debian's: /bin /sbin /lib /lib64 point into /usr.
skeleton() {
	local d=$1 x
	mkdir -p "$d"/usr/{bin,sbin,lib,lib64} "$d"/{dev,proc,sys,run,tmp,etc,root,mnt}
	for x in bin sbin lib lib64; do ln -s "usr/$x" "$d/$x"; done
	cp /bin/busybox "$d/usr/bin/busybox"
}

# copy_closure ROOT DEST PROG...: PROGs from ROOT plus every library ldd
# (run inside ROOT) names, at the same paths.
copy_closure() {
	local root=$1 dest=$2 p f
	shift 2
	for p in "$@"; do
		[[ -e $root$p ]] || die "guest program $p missing in the dom0 root"
		echo "$p"
		chroot "$root" ldd "$p" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}'
	done | sort -u | while read -r f; do
		mkdir -p "$dest$(dirname "$f")"
		cp -L "$root$f" "$dest$f"
	done
}

do_initramfs() {
	local r=$RIG_DIR/dom0root d=$RIG_DIR/initrd-dom0 g=$RIG_DIR/initrd-guest t0=$SECONDS p
	# ---- dom0 early initramfs
	rm -rf "$d"
	mkdir -p "$d"/{bin,dev,proc,sys,newroot}
	cp /bin/busybox "$d/bin/busybox"
	put_mods "$d" "${DOM0_EARLY_MODS[@]}"
	install -m 755 "$E2E/dom0/initramfs-init.sh" "$d/init"
	pack "$d" "$RIG_DIR/initrd-dom0.img"
	# ---- guest root
	rm -rf "$g"
	skeleton "$g"
	put_mods "$g" "${GUEST_MODS[@]}"
	local progs=("${GUEST_PROGS[@]}")
	for p in "$r"/usr/bin/sg_* "$r"/usr/bin/sginfo "$r"/usr/bin/sg_map26; do
		[[ -e $p ]] && progs+=("${p#"$r"}")
	done
	copy_closure "$r" "$g" "${progs[@]}"
	# the tools' other names (mkfs.ext4 -> mke2fs, xenstore-read -> xenstore, ...)
	ln -s mke2fs "$g/usr/sbin/mkfs.ext4"
	ln -s mt-st "$g/usr/bin/mt"
	for p in read write exists rm ls list chmod watch; do ln -s xenstore "$g/usr/bin/xenstore-$p"; done
	cp "$r/etc/mke2fs.conf" "$g/etc/" 2>/dev/null || true
	install -m 755 "$E2E/guest/init.sh" "$g/init"
	log "initramfs: guest root $(du -sh "$g" | cut -f1) unpacked ($(du -sh "$g/usr/lib" | cut -f1) of it libraries)"
	pack "$g" "$RIG_DIR/initrd-guest.img" "zstd -q -T0 -${RIG_GUEST_ZSTD_LEVEL:-3}"
	log "initramfs: dom0 $(du -h "$RIG_DIR/initrd-dom0.img" | cut -f1), guest $(du -h "$RIG_DIR/initrd-guest.img" | cut -f1) packed, in $((SECONDS - t0)) s"
}
