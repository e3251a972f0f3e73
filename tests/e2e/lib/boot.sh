# shellcheck shell=bash
# Booting the rig: QEMU (TCG) -> Xen -> dom0 -> /rig/init.sh, and judging the
# run from the serial log. Sourced by rig.sh.

# choose_accel: TCG unless RIG_ACCEL=kvm. This machine class's /dev/kvm is
# kvm_pvm, a software virtualizer that cannot run Xen (docs/testing.md, "The machine"),
# so KVM is never picked automatically.
choose_accel() {
	local want=${RIG_ACCEL:-tcg}
	if [[ $want == kvm && -d /sys/module/kvm_pvm ]]; then
		log "warning: /dev/kvm is kvm_pvm here; Xen is known not to boot on it (docs/testing.md)" >&2
	fi
	if [[ $want == kvm ]]; then
		echo "-accel kvm -cpu host"
	else
		# XSAVE (and with it AVX) off: with them, dom0 processes crashed in libc
		# (heap corruption: bash, modprobe, xl-vscsi) once a guest ran, i.e. once
		# Xen switched FPU state between domains with XSAVE* under TCG. Without
		# XSAVE, Xen switches with FXSAVE/FXRSTOR. RIG_CPU overrides.
		echo "-accel tcg,thread=multi -cpu ${RIG_CPU:-max,xsave=off,avx=off,avx2=off}"
	fi
}

# qemu_cmd MODE ARGS...: the QEMU command line into the array Q.
# MODE is test or shell (dom0's /rig/init.sh reads it from rig.mode=).
qemu_cmd() {
	local mode=$1 accel xen_args dom0_args
	accel=$(choose_accel)
	# smap=0 smep=0: required under TCG (-cpu max has SMAP; without them dom0
	# dies at its first exception in create_bounce_frame).
	xen_args="console=com1 com1=115200,8n1 dom0_mem=${RIG_DOM0_MEM:-1024}M,max:${RIG_DOM0_MEM:-1024}M"
	xen_args+=" dom0_max_vcpus=2 bootscrub=false loglvl=all guest_loglvl=all smap=0 smep=0"
	# print-fatal-signals: every crash (SIGSEGV, SIGABRT, ...) of a dom0
	# process lands in dmesg, where the dom0-health check finds it
	dom0_args="console=hvc0 earlyprintk=xen loglevel=6 print-fatal-signals=1 rig.mode=$mode"
	if [[ -n ${RIG_ONLY:-} ]]; then
		dom0_args+=" rig.only=$(echo "$RIG_ONLY" | tr ' ,' '::')"
	fi
	# shellcheck disable=SC2206 # accel is a list of words on purpose
	Q=(qemu-system-x86_64 -machine pc $accel -smp 2 -m "${RIG_QEMU_MEM:-3072}" -no-reboot
		-display none -net none
		-kernel "$RIG_DIR/xen.elf32" -append "$xen_args"
		-initrd "$RIG_DIR/vmlinux $dom0_args,$RIG_DIR/initrd-dom0.img"
		-drive "file=$RIG_DIR/dom0.ext4,if=virtio,format=raw,cache=unsafe,snapshot=on"
		-drive "file=$RIG_DIR/rig.ext4,if=virtio,format=raw,cache=unsafe,snapshot=on"
		-drive "file=$RIG_DIR/out.img,if=virtio,format=raw,cache=unsafe")
}

# fresh_out_disk: the disk dom0 writes its results to (a tar stream on the raw
# device: logs, results files); zeroed before every boot.
fresh_out_disk() {
	rm -f "$RIG_DIR/out.img"
	truncate -s 256M "$RIG_DIR/out.img"
}

boot_shell() {
	fresh_out_disk
	qemu_cmd shell
	log "interactive dom0: the shell appears after 'DOM0-READY'; Ctrl-a x quits QEMU"
	log "in dom0: 'rig-run' runs all scenarios, 'rig-run NAME' one, 'guest_run CMD' runs CMD in the guest"
	"${Q[@]}" -serial mon:stdio
}

# progress LINE: echo the serial lines worth seeing live (boot milestones,
# scenario start/results), with the host-side time.
progress() {
	case $1 in
	*"Xen version"* | *"Building a PV Dom0"* | *"RIG["*)
		log "  | ${1#"(XEN) "}" ;;
	esac
}

boot_test() {
	local serial=$RIG_LOGS/serial.log qpid t0=$SECONDS timeout=${RIG_TIMEOUT:-3600} seen=0 n line
	local verdict=""
	fresh_out_disk
	rm -rf "$RIG_LOGS/out"
	qemu_cmd test
	printf '%q ' "${Q[@]}" >"$RIG_LOGS/qemu-cmdline.txt"
	: >"$serial"
	"${Q[@]}" -serial "file:$serial" >"$RIG_LOGS/qemu.out" 2>&1 &
	qpid=$!
	log "boot: qemu pid $qpid ($(choose_accel)), timeout ${timeout} s, serial log $serial"
	while :; do
		# new complete lines since the last poll
		n=$(wc -l <"$serial")
		if ((n > seen)); then
			while IFS= read -r line; do progress "${line%$'\r'}"; done < <(sed -n "$((seen + 1)),${n}p" "$serial")
			seen=$n
		fi
		if grep -aq 'RIG-DONE' "$serial"; then verdict="done"; break; fi
		if ! kill -0 "$qpid" 2>/dev/null; then verdict=exited; break; fi
		if ((SECONDS - t0 > timeout)); then verdict=timeout; break; fi
		sleep 1
	done
	# dom0 powers the machine off right after RIG-DONE; give it a moment, then make sure
	local i
	for ((i = 0; i < 30; i++)); do kill -0 "$qpid" 2>/dev/null || break; sleep 1; done
	if kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null || true
		for ((i = 0; i < 10; i++)); do kill -0 "$qpid" 2>/dev/null || break; sleep 1; done
		kill -9 "$qpid" 2>/dev/null || true
	fi
	wait "$qpid" 2>/dev/null || true
	log "boot done in $((SECONDS - t0)) s ($verdict)"
	echo "boot $((SECONDS - t0))" >>"$RIG_LOGS/timings.txt"
	collect_out
	judge "$verdict"
}

# collect_out: unpack what dom0 wrote to the out disk into $RIG_LOGS
# (guest console logs, dmesg, results-*.json/txt).
collect_out() {
	mkdir -p "$RIG_LOGS/out"
	if tar -xf "$RIG_DIR/out.img" -C "$RIG_LOGS/out" 2>/dev/null; then
		# results files are the artefacts CI keeps: put them beside serial.log
		find "$RIG_LOGS/out" -maxdepth 1 -name 'results-*' -exec cp {} "$RIG_LOGS/" \;
	else
		log "no output from dom0 (out disk empty: the run did not finish)"
	fi
}

# judge VERDICT: compare the scenario results on the serial log with the list
# of expected scenarios; print a summary; non-zero on any FAIL, missing PASS,
# timeout or crash.
judge() {
	local verdict=$1 serial=$RIG_LOGS/serial.log bad=0 name want results line
	results=$(tr -d '\r' <"$serial" | sed -n 's/^.*RIG\[[0-9. ]*\] \(PASS\|FAIL\|PENDING\): /\1 /p')
	echo
	echo "== e2e summary"
	[[ -n $results ]] && while IFS= read -r line; do echo "   $line"; done <<<"$results"
	case $verdict in
	done) ;;
	timeout) echo "   FAIL: rig: timeout after ${RIG_TIMEOUT:-3600} s"; bad=1 ;;
	*) echo "   FAIL: rig: QEMU exited before the scenarios finished"; bad=1 ;;
	esac
	if echo "$results" | grep -q '^FAIL '; then bad=1; fi
	while read -r want; do
		name=${want%%#*}
		name=${name//[[:space:]]/}
		[[ -z $name ]] && continue
		if [[ -n ${RIG_ONLY:-} && " $RIG_ONLY " != *" $name "* ]]; then continue; fi
		if ! echo "$results" | grep -Eq "^PASS $name( |$)"; then
			echo "   FAIL: $name: expected PASS, got $(echo "$results" | awk -v n="$name" '$2==n || $2==n":" {print $1; exit}' | grep . || echo nothing)"
			bad=1
		fi
	done <"$E2E/expected"
	echo "== step timings (s): $(awk '{printf "%s %s, ", $1, $2}' "$RIG_LOGS/timings.txt" | sed 's/, $//')"
	if ((bad)); then
		echo "== e2e FAILED; logs in $RIG_LOGS"
		echo "---- tail of $serial"
		tail -n 80 "$serial" | tr -d '\r'
		local g
		for g in "$RIG_LOGS"/out/guest-*.log; do
			[[ -f $g ]] || continue
			echo "---- tail of $g"
			tail -n 40 "$g" | tr -d '\r'
		done
		return 1
	fi
	echo "== e2e passed ($(echo "$results" | grep -c '^PASS') scenarios); logs in $RIG_LOGS"
}
