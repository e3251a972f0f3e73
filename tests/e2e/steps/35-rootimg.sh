# shellcheck shell=bash
# Step "rootimg" (cached): the dom0 root directory packed as an ext4 image.
# Project files never go in here (they are on the rig disk, steps/40-image.sh),
# so this reruns only when the dom0 root changes.

rootimg_key() { hash_of "$E2E/steps/35-rootimg.sh" "$(step_key dom0root)"; }

do_rootimg() {
	local r=$RIG_DIR/dom0root
	mkdir -p "$r/rig"
	rm -f "$RIG_DIR/dom0.ext4"
	# sparse 4 GiB: room for LIO fileio backing files written at test time
	mkfs.ext4 -q -F -L dom0root -d "$r" "$RIG_DIR/dom0.ext4" 4G
	log "rootimg: $(du -h "$RIG_DIR/dom0.ext4" | cut -f1) allocated"
}
