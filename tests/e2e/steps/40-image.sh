# shellcheck shell=bash
# Step "rigdisk" (every run, ~1 s): a small ext4 image with everything of the
# project (binaries, test programs, dom0 scripts, scenarios, the guest's kernel
# and root). dom0 mounts it on /rig, so a code change never repacks the root.

# stage_rig DIR: lay out /rig.
stage_rig() {
	local s=$1 f
	rm -rf "$s"
	mkdir -p "$s"/{bin,tests,guest,scenarios}
	# dom0 side: init, runner, helpers, scenarios and the list of expected ones
	install -m 755 "$E2E/dom0/init.sh" "$E2E/dom0/run-scenarios.sh" "$s/"
	install -m 644 "$E2E/dom0/helpers.sh" "$E2E/expected" "$s/"
	install -m 644 "$E2E"/scenarios/*.sh "$s/scenarios/"
	# the project's documented commands (scripts/lio-xen-pvscsi.sh, ...)
	install -m 755 "$TOP"/scripts/lio-xen-pvscsi.sh "$s/bin/"
	# the helpers of groups of scenarios (helpers-toolstack.sh, -userspace, -lifecycle, ...),
	# the hotplug script + udev rule, the C API live test
	install -m 644 "$E2E"/dom0/helpers-*.sh "$s/"
	install -m 755 "$TOP"/hotplug/scripts/vscsi-govscsi "$s/bin/"
	install -D -m 644 -t "$s/hotplug" "$TOP"/hotplug/udev/*.rules
	cc -O2 -Wall -Werror -I"$TOP/c/include" -o "$s/bin/capi-live" "$E2E/capi/capi-live.c" \
		-L"$TOP/build" -lgovscsi -Wl,-rpath,/rig/bin || die "cc tests/e2e/capi/capi-live.c failed (make lib first)"
	# the project's binaries (make build lib), dynamically linked against Debian's libxen*
	for f in "$TOP"/build/*; do
		[[ -f $f ]] || continue
		case $f in *.h | *.json | *.txt | *.log) continue ;; esac
		cp "$f" "$s/bin/"
	done
	# what dom0-ready expects to find: every */cmd/<name> of the tree (as the
	# Makefile's CMDS) and libgovscsi.so once plugin/capi exists
	(
		cd "$TOP" || exit
		for f in */cmd/*/main.go */*/cmd/*/main.go; do
			if [[ -f $f ]]; then basename "$(dirname "$f")"; fi
		done
		if [[ -d plugin/capi ]]; then echo libgovscsi.so; fi
	) | sort -u >"$s/manifest"
	# test programs: every main package under tests/ (e.g. tests/xenlibs) and
	# every package's e2e-tagged test binary land in /rig/tests
	build_test_programs "$s/tests"
	# the guest
	cp "$RIG_DIR/vmlinuz" "$RIG_DIR/initrd-guest.img" "$s/guest/"
	install -m 644 "$E2E"/guest/*.cfg "$s/guest/"
}

# build_test_programs DIR: go build every tests/<name> main package into DIR/<name>.
build_test_programs() {
	local out=$1 d name
	export PATH=/usr/local/go/bin:$PATH
	for d in "$TOP"/tests/*/; do
		name=$(basename "$d")
		[[ $name == e2e ]] && continue
		compgen -G "$d*.go" >/dev/null || continue
		grep -qs '^package main' "$d"*.go || continue
		(cd "$TOP" && go build -o "$out/$name" "./tests/$name") || die "go build ./tests/$name failed"
		log "rigdisk: test program tests/$name built"
	done
}

do_rigdisk() {
	local s=$RIG_DIR/rig-stage mb
	stage_rig "$s"
	mb=$(($(du -sm "$s" | cut -f1) * 12 / 10 + 32))
	rm -f "$RIG_DIR/rig.ext4"
	mkfs.ext4 -q -F -L rig -d "$s" "$RIG_DIR/rig.ext4" "${mb}M"
	log "rigdisk: $(du -sh "$s" | cut -f1) staged, $(find "$s/bin" -type f | wc -l) programs in /rig/bin"
}
