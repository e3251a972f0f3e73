# shellcheck shell=bash
# Step "dom0root": the dom0 root filesystem as a directory, $RIG_DIR/dom0root:
# debootstrap minbase + the Xen tools + the test userland ($DOM0_PKGS), and the
# modules of the kernel fetched by the fetch step. The image step later packs
# it (plus the project's files under /rig) into an ext4 image.

dom0root_key() {
	hash_of "$E2E/steps/20-dom0root.sh" "$(step_key fetch)" "${DOM0_PKGS[*]}" "$MIRROR"
}

do_dom0root() {
	local r=$RIG_DIR/dom0root t0=$SECONDS
	if [[ ! -x $r/usr/bin/apt-get || ! -f $RIG_DIR/debootstrap.ok ]]; then
		rm -rf "$r" "$RIG_DIR/debootstrap.ok"
		debootstrap --variant=minbase --include=kmod,procps,util-linux,busybox \
			"$SUITE" "$r" "$MIRROR" >"$RIG_LOGS/debootstrap.log" 2>&1 ||
			{ tail -20 "$RIG_LOGS/debootstrap.log"; die "debootstrap failed"; }
		touch "$RIG_DIR/debootstrap.ok"
		log "dom0root: debootstrap done in $((SECONDS - t0)) s"
	fi
	# main + updates + security as on the host; daemons must not start in the chroot
	if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
		cp /etc/apt/sources.list.d/debian.sources "$r/etc/apt/sources.list.d/"
		rm -f "$r/etc/apt/sources.list"
	fi
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod +x "$r/usr/sbin/policy-rc.d"
	mountpoint -q "$r/proc" || mount -t proc proc "$r/proc"
	t0=$SECONDS
	local rc=0
	{
		chroot "$r" apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -qq \
				--no-install-recommends "${DOM0_PKGS[@]}" &&
			chroot "$r" apt-get clean
	} >"$RIG_LOGS/dom0root-apt.log" 2>&1 || rc=$?
	umount "$r/proc"
	((rc == 0)) || { tail -20 "$RIG_LOGS/dom0root-apt.log"; die "apt-get in the dom0 root failed"; }
	log "dom0root: packages installed in $((SECONDS - t0)) s"
	chroot "$r" dpkg-query -W "${DOM0_PKGS[@]}" | sed 's/^/  /'
	chroot "$r" dpkg-query -W >"$RIG_DIR/dom0root.packages"
	rm -rf "$r/lib/modules"
	mkdir -p "$r/lib/modules"
	cp -a "$RIG_DIR/kern/lib/modules/$(kver)" "$r/lib/modules/"
	log "dom0root: $(du -sh "$r" | cut -f1)"
}
