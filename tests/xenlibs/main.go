// Command xenlibs-test exercises libxlgo/gnttab and libxlgo/evtchn end to end
// against the real Xen devices, inside one domain (normally dom0 of the test
// ground): it grants pages of its own to itself through /dev/xen/gntalloc
// (libxengntshr), maps and grant-copies them with gnttab, and connects two
// event-channel handles to each other with evtchn.
//
// It also checks the fakes' assumptions (libxlgo/xenfake) against Xen: the
// GNTST codes for bad refs, unknown domains and read-only writes, and the
// lateeoi masking of the evtchn device.
//
// Output is one "PASS: <name>" or "FAIL: <name>: <why>" line per check; the
// exit status is 1 if any check failed. Without /dev/xen/gntdev it prints
// "SKIP: no /dev/xen" and exits 0.
//
// Build on the host, run as root in dom0 (needs xen_gntdev, xen_gntalloc and
// xen_evtchn loaded):
//
//	go build -o build/xenlibs-test ./tests/xenlibs
//	./xenlibs-test [-domid 0] [-guest D] [-bench]
//
// -bench (or XENLIBS_BENCH=1) also prints "BENCH:" lines timing grant copy,
// map+unmap and an event-channel round trip on this host: measurements for
// the record, never pass/fail criteria.
//
// With -guest D (or XENLIBS_GUEST_DOMID=D in the environment) it also works
// across domains with running guest D: it reads the guest's xenstore page
// through the grant the toolstack seeds at ref 1 (GNTTAB_RESERVED_XENSTORE,
// which dom0's xenstored maps the same way), by grant copy and by a read-only
// mapping, checks the GNTST codes for refs the guest never granted, and
// allocates an event channel port for the guest. Nothing is written to the
// guest.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/libxlgo/evtchn"
	"github.com/govscsi/govscsi/libxlgo/gnttab"
	"github.com/govscsi/govscsi/libxlgo/xenctrl"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

func main() {
	domid := flag.Uint("domid", 0, "id of the domain this runs in (grants are made to it)")
	guest := flag.Int("guest", envInt("XENLIBS_GUEST_DOMID", -1), "id of a running guest for the cross-domain checks (-1: none)")
	bench := flag.Bool("bench", envInt("XENLIBS_BENCH", 0) == 1, "also time the main operations (BENCH: lines)")
	flag.Parse()
	code := run(os.Stdout, uint32(*domid))
	if *bench && code == 0 && !skipped {
		code = runBench(os.Stdout, uint32(*domid))
	}
	if *guest >= 0 && code == 0 && !skipped {
		code = runGuest(os.Stdout, uint32(*guest))
	}
	os.Exit(code)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// skipped is set when run found no Xen.
var skipped bool

// report collects check results.
type report struct {
	out    io.Writer
	failed int
}

func (r *report) check(name string, err error) bool {
	if err != nil {
		r.failed++
		fmt.Fprintf(r.out, "FAIL: %s: %v\n", name, err)
		return false
	}
	fmt.Fprintf(r.out, "PASS: %s\n", name)
	return true
}

func (r *report) note(format string, args ...any) {
	fmt.Fprintf(r.out, "NOTE: "+format+"\n", args...)
}

// run performs every check and returns the exit status.
func run(out io.Writer, self uint32) int {
	if _, err := os.Stat(gnttab.Device); err != nil {
		fmt.Fprintln(out, "SKIP: no /dev/xen")
		skipped = true
		return 0
	}
	r := &report{out: out}
	grantChecks(r, self)
	eventChecks(r, self)
	if r.failed > 0 {
		fmt.Fprintf(out, "FAILED: %d check(s)\n", r.failed)
		return 1
	}
	fmt.Fprintln(out, "ALL PASS")
	return 0
}

func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = seed + byte(i*7)
	}
}

// captureStderr returns what f wrote to file descriptor 2 (where the C
// libraries' default logger writes).
func captureStderr(f func()) string {
	rd, wr, err := os.Pipe()
	if err != nil {
		f()
		return ""
	}
	saved, err := unix.Dup(2)
	if err != nil {
		f()
		return ""
	}
	unix.Dup2(int(wr.Fd()), 2)
	f()
	unix.Dup2(saved, 2)
	unix.Close(saved)
	wr.Close()
	b, _ := io.ReadAll(rd)
	rd.Close()
	return string(b)
}

func grantChecks(r *report, self uint32) {
	g, err := gnttab.Open()
	if !r.check("gnttab/open", err) {
		return
	}
	defer func() { r.check("gnttab/close", g.Close()) }()
	r.check("gnttab/set-max-grants", g.SetMaxGrants(128))

	sh, err := openSharer()
	if !r.check("gntshr/open", err) {
		return
	}
	defer sh.close()
	shared, refs, err := sh.share(self, 2, true)
	if !r.check("gntshr/share-2-writable", err) {
		return
	}
	defer func() { r.check("gntshr/unshare", sh.unshare(shared)) }()
	roPage, roRefs, err := sh.share(self, 1, false)
	if !r.check("gntshr/share-1-readonly", err) {
		return
	}
	defer func() { r.check("gntshr/unshare-readonly", sh.unshare(roPage)) }()
	fill(shared, 1)
	fill(roPage, 99)
	r.note("granted refs %v (rw) and %v (ro) to dom %d", refs, roRefs, self)

	// --- mapping
	r.check("gnttab/map-one", func() error {
		m, err := g.MapGrantRef(self, refs[0], true)
		if err != nil {
			return err
		}
		defer g.Unmap(m)
		if !bytes.Equal(m, shared[:4096]) {
			return errors.New("mapped page differs from the granted page")
		}
		m[10] ^= 0xff
		if shared[10] != m[10] {
			return errors.New("write through the mapping not seen by the granter")
		}
		m[10] ^= 0xff
		return nil
	}())
	r.check("gnttab/map-many", func() error {
		m, err := g.MapGrantRefs(self, refs, true)
		if err != nil {
			return err
		}
		if len(m) != 8192 || !bytes.Equal(m, shared) {
			return fmt.Errorf("mapping of %d bytes differs from the 2 granted pages", len(m))
		}
		if n := g.Mapped(); n != 1 {
			return fmt.Errorf("Mapped() = %d, want 1", n)
		}
		if err := g.Unmap(m); err != nil {
			return err
		}
		if err := g.Unmap(m); !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("second unmap: %v, want EINVAL", err)
		}
		if n := g.Mapped(); n != 0 {
			return fmt.Errorf("Mapped() = %d after unmap", n)
		}
		return nil
	}())
	r.check("gnttab/map-readonly-grant", func() error {
		if m, err := g.MapGrantRef(self, roRefs[0], true); err == nil {
			g.Unmap(m)
			return errors.New("writable map of a read-only grant succeeded")
		}
		m, err := g.MapGrantRef(self, roRefs[0], false)
		if err != nil {
			return fmt.Errorf("read-only map: %w", err)
		}
		defer g.Unmap(m)
		if !bytes.Equal(m, roPage) {
			return errors.New("read-only mapping differs")
		}
		return nil
	}())
	r.check("gnttab/map-bad-ref-quietly", func() error {
		var err error
		stderr := captureStderr(func() {
			var m []byte
			if m, err = g.MapGrantRef(self, 1<<20, false); err == nil {
				g.Unmap(m)
			}
		})
		want := fmt.Sprintf("gnttab map ref %d of dom %d: ", 1<<20, self)
		switch {
		case err == nil:
			return errors.New("map of a bogus ref succeeded")
		case !strings.HasPrefix(err.Error(), want):
			return fmt.Errorf("message %q, want prefix %q", err, want)
		case stderr != "":
			return fmt.Errorf("library wrote to stderr: %q", stderr)
		}
		r.note("map of a bogus ref: %v", err)
		return nil
	}())

	// --- grant copy
	r.check("gnttab/copy-to-guest", func() error {
		src := bytes.Repeat([]byte("to-guest"), 25) // 200 bytes
		ops := []xenif.GrantCopyOp{{Ref: refs[1], Domid: self, Offset: 100, ToGuest: true, Local: src}}
		if err := g.GrantCopy(ops); err != nil {
			return err
		}
		if ops[0].Status != 0 {
			return fmt.Errorf("status %d (%s)", ops[0].Status, xenif.GrantStatusText(ops[0].Status))
		}
		if !bytes.Equal(shared[4096+100:4096+300], src) {
			return errors.New("bytes did not land in the granted page")
		}
		return nil
	}())
	r.check("gnttab/copy-from-guest", func() error {
		dst := make([]byte, 4096)
		ops := []xenif.GrantCopyOp{{Ref: refs[0], Domid: self, Local: dst}}
		if err := g.GrantCopy(ops); err != nil {
			return err
		}
		if ops[0].Status != 0 {
			return fmt.Errorf("status %d (%s)", ops[0].Status, xenif.GrantStatusText(ops[0].Status))
		}
		if !bytes.Equal(dst, shared[:4096]) {
			return errors.New("copied bytes differ from the granted page")
		}
		return nil
	}())
	r.check("gnttab/copy-batch", func() error {
		// 16 sector-sized reads and writes over both pages in one ioctl,
		// from and into one local buffer (as a request's data would be).
		local := make([]byte, 16*512)
		fill(local, 42)
		ops := make([]xenif.GrantCopyOp, 16)
		for i := range ops {
			ops[i] = xenif.GrantCopyOp{Ref: refs[i%2], Domid: self, Offset: uint16(i / 2 * 512),
				ToGuest: i < 8, Local: local[i*512 : (i+1)*512]}
		}
		// Writes cover offsets 0..2047 of each page, reads 2048..4095, so
		// each read must return what the pages held before the batch.
		want := bytes.Clone(local)
		for i := 8; i < 16; i++ {
			page := shared[(i%2)*4096:]
			off := i / 2 * 512
			copy(want[i*512:(i+1)*512], page[off:off+512])
		}
		if err := g.GrantCopy(ops); err != nil {
			return err
		}
		for i, op := range ops {
			if op.Status != 0 {
				return fmt.Errorf("op %d status %d", i, op.Status)
			}
		}
		for i := 0; i < 8; i++ {
			page := shared[(i%2)*4096:]
			off := i / 2 * 512
			if !bytes.Equal(page[off:off+512], local[i*512:(i+1)*512]) {
				return fmt.Errorf("write op %d did not land", i)
			}
		}
		for i := 8; i < 16; i++ {
			if !bytes.Equal(local[i*512:(i+1)*512], want[i*512:(i+1)*512]) {
				return fmt.Errorf("read op %d returned wrong bytes", i)
			}
		}
		return nil
	}())
	// What Xen answers for bad ops; xenfake.Grants gives the same codes.
	r.check("gnttab/copy-statuses-match-fake", func() error {
		buf := func() []byte { return make([]byte, 16) }
		cases := []struct {
			name string
			op   xenif.GrantCopyOp
			want int16
		}{
			{"good", xenif.GrantCopyOp{Ref: refs[0], Domid: self, Local: buf()}, xenif.GNTSTOkay},
			{"write to read-only grant", xenif.GrantCopyOp{Ref: roRefs[0], Domid: self, ToGuest: true, Local: buf()}, xenif.GNTSTGeneralError},
			{"read of read-only grant", xenif.GrantCopyOp{Ref: roRefs[0], Domid: self, Local: buf()}, xenif.GNTSTOkay},
			{"ref beyond the table", xenif.GrantCopyOp{Ref: 1 << 20, Domid: self, Local: buf()}, xenif.GNTSTBadGntref},
			{"unknown domain", xenif.GrantCopyOp{Ref: refs[0], Domid: 32000, Local: buf()}, xenif.GNTSTBadDomain},
			{"crosses the page (pre-checked)", xenif.GrantCopyOp{Ref: refs[0], Domid: self, Offset: 4090, Local: buf()}, xenif.GNTSTBadCopyArg},
			{"good after bad ones", xenif.GrantCopyOp{Ref: refs[1], Domid: self, Offset: 4080, Local: buf()}, xenif.GNTSTOkay},
		}
		ops := make([]xenif.GrantCopyOp, len(cases))
		for i, c := range cases {
			ops[i] = c.op
		}
		if err := g.GrantCopy(ops); err != nil {
			return err
		}
		var bad []string
		for i, c := range cases {
			if ops[i].Status != c.want {
				bad = append(bad, fmt.Sprintf("%s: %d (%s), fake gives %d (%s)", c.name,
					ops[i].Status, xenif.GrantStatusText(ops[i].Status), c.want, xenif.GrantStatusText(c.want)))
			}
		}
		if bad != nil {
			return errors.New(strings.Join(bad, "; "))
		}
		if !bytes.Equal(roPage, func() []byte { b := make([]byte, 4096); fill(b, 99); return b }()) {
			return errors.New("the refused write changed the read-only page")
		}
		return nil
	}())
	r.check("gnttab/concurrent-copies-and-maps", func() error {
		// Four goroutines each own 512 bytes of page 0 (offsets 2048..4095)
		// and copy to and from it while a fifth maps and unmaps page 1.
		errs := make(chan error, 5)
		for w := 0; w < 4; w++ {
			go func(w int) {
				out := bytes.Repeat([]byte{byte(0xc0 + w)}, 512)
				in := make([]byte, 512)
				off := uint16(2048 + w*512)
				for i := 0; i < 200; i++ {
					ops := []xenif.GrantCopyOp{
						{Ref: refs[0], Domid: self, Offset: off, ToGuest: true, Local: out},
						{Ref: refs[0], Domid: self, Offset: off, Local: in},
					}
					if err := g.GrantCopy(ops); err != nil {
						errs <- err
						return
					}
					if ops[0].Status != 0 || ops[1].Status != 0 || !bytes.Equal(in, out) {
						errs <- fmt.Errorf("worker %d round %d: statuses %d %d", w, i, ops[0].Status, ops[1].Status)
						return
					}
				}
				errs <- nil
			}(w)
		}
		go func() {
			for i := 0; i < 100; i++ {
				m, err := g.MapGrantRef(self, refs[1], false)
				if err != nil {
					errs <- err
					return
				}
				if err := g.Unmap(m); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
		var first error
		for i := 0; i < 5; i++ {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}())
	r.check("gnttab/close-reports-leak", func() error {
		g2, err := gnttab.Open()
		if err != nil {
			return err
		}
		if _, err := g2.MapGrantRef(self, refs[0], false); err != nil {
			g2.Close()
			return err
		}
		err = g2.Close()
		if err == nil || !strings.Contains(err.Error(), "1 mapping(s)") {
			return fmt.Errorf("g2.Close with a live mapping: %v", err)
		}
		if err := g2.Close(); err != nil {
			return fmt.Errorf("second Close: %v", err)
		}
		return nil
	}())
}

func waitFor(e *evtchn.Handle, d time.Duration) (uint32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return e.WaitPending(ctx)
}

func readable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	for err == unix.EINTR { // the Go runtime's preemption signal
		n, err = unix.Poll(pfd, 0)
	}
	return err == nil && n == 1
}

func eventChecks(r *report, self uint32) {
	a, err := evtchn.Open()
	if !r.check("evtchn/open-a", err) {
		return
	}
	defer func() { r.check("evtchn/close-a", a.Close()) }()
	b, err := evtchn.Open()
	if !r.check("evtchn/open-b", err) {
		return
	}
	defer func() { r.check("evtchn/close-b", b.Close()) }()

	// a plays the frontend (allocates), b the backend (binds).
	pa, err := a.BindUnboundPort(self)
	if !r.check("evtchn/bind-unbound", err) {
		return
	}
	pb, err := b.BindInterdomain(self, pa)
	if !r.check("evtchn/bind-interdomain", err) {
		return
	}
	r.note("ports: a=%d b=%d", pa, pb)
	const long, short = 5 * time.Second, 300 * time.Millisecond

	r.check("evtchn/bind-leaves-port-pending", func() error {
		p, err := waitFor(b, long)
		if err != nil {
			return fmt.Errorf("no event after bind (xenfake assumes one): %w", err)
		}
		if p != pb {
			return fmt.Errorf("pending port %d, want %d", p, pb)
		}
		return b.Unmask(pb)
	}())
	r.check("evtchn/notify-a-to-b", func() error {
		if err := a.Notify(pa); err != nil {
			return err
		}
		p, err := waitFor(b, long)
		if err != nil {
			return err
		}
		if p != pb {
			return fmt.Errorf("pending port %d, want %d", p, pb)
		}
		return nil
	}())
	r.check("evtchn/lateeoi-masked-until-unmask", func() error {
		// pb was just delivered and not unmasked: a new event must latch.
		if err := a.Notify(pa); err != nil {
			return err
		}
		if p, err := waitFor(b, short); !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("masked port delivered: port %d, err %v", p, err)
		}
		if readable(b.Fd()) {
			return errors.New("fd readable while the only port is masked")
		}
		if err := b.Unmask(pb); err != nil {
			return err
		}
		p, err := waitFor(b, long)
		if err != nil {
			return fmt.Errorf("latched event not delivered at unmask: %w", err)
		}
		if p != pb {
			return fmt.Errorf("pending port %d, want %d", p, pb)
		}
		return b.Unmask(pb)
	}())
	r.check("evtchn/notify-b-to-a-and-fd-polls", func() error {
		if err := b.Notify(pb); err != nil {
			return err
		}
		deadline := time.Now().Add(long)
		for !readable(a.Fd()) {
			if time.Now().After(deadline) {
				return errors.New("a's fd never polled readable")
			}
			time.Sleep(time.Millisecond)
		}
		p, err := waitFor(a, long)
		if err != nil {
			return err
		}
		if p != pa {
			return fmt.Errorf("pending port %d, want %d", p, pa)
		}
		return a.Unmask(pa)
	}())
	r.check("evtchn/close-wakes-waiter", func() error {
		c, err := evtchn.Open()
		if err != nil {
			return err
		}
		if _, err := c.BindUnboundPort(self); err != nil {
			c.Close()
			return err
		}
		done := make(chan error, 1)
		go func() { _, err := c.Pending(); done <- err }()
		time.Sleep(100 * time.Millisecond)
		if err := c.Close(); err != nil {
			return err
		}
		select {
		case err := <-done:
			if !errors.Is(err, syscall.EBADF) {
				return fmt.Errorf("a Pending after Close: %v, want EBADF", err)
			}
			return nil
		case <-time.After(long):
			return errors.New("c.Close did not wake a blocked Pending")
		}
	}())
	r.check("evtchn/unbind", func() error {
		if err := b.Unbind(pb); err != nil {
			return err
		}
		// a's port is unbound again: notifying it is silently dropped.
		if err := a.Notify(pa); err != nil {
			return fmt.Errorf("notify of a port whose peer left: %w", err)
		}
		if err := b.Unbind(pb); !errors.Is(err, syscall.ENOTCONN) {
			return fmt.Errorf("second unbind: %v, want ENOTCONN", err)
		}
		if err := b.Notify(pb); !errors.Is(err, syscall.ENOTCONN) {
			return fmt.Errorf("notify of an unbound port: %v, want ENOTCONN", err)
		}
		return a.Unbind(pa)
	}())
}

// gnttabReservedXenstore is the grant ref under which the toolstack grants a
// PV guest's xenstore page to dom0 (GNTTAB_RESERVED_XENSTORE).
const gnttabReservedXenstore = 1

// runGuest performs the read-only cross-domain checks against guest.
func runGuest(out io.Writer, guest uint32) int {
	r := &report{out: out}
	g, err := gnttab.Open()
	if !r.check("guest/gnttab-open", err) {
		return 1
	}
	defer func() { r.check("guest/gnttab-close", g.Close()) }()
	r.note("cross-domain checks against dom %d", guest)

	r.check("guest/copy-and-map-xenstore-page", func() error {
		// The guest may be talking to xenstored meanwhile: compare a copy
		// and the mapping a few times until they agree.
		m, err := g.MapGrantRef(guest, gnttabReservedXenstore, false)
		if err != nil {
			return err
		}
		defer g.Unmap(m)
		page := make([]byte, 4096)
		for try := 0; try < 20; try++ {
			ops := []xenif.GrantCopyOp{{Ref: gnttabReservedXenstore, Domid: guest, Local: page}}
			if err := g.GrantCopy(ops); err != nil {
				return err
			}
			if ops[0].Status != 0 {
				return fmt.Errorf("grant copy status %d (%s)", ops[0].Status, xenif.GrantStatusText(ops[0].Status))
			}
			if bytes.Equal(page, m) {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("grant-copied page and mapped page never agreed")
	}())
	r.check("guest/copy-statuses-match-fake", func() error {
		cases := []struct {
			name string
			ref  uint32
			want int16
		}{
			{"ref beyond the guest's table", 1 << 20, xenif.GNTSTBadGntref},
			{"reserved ref 7, never granted", 7, xenif.GNTSTGeneralError},
		}
		var bad []string
		for _, c := range cases {
			ops := []xenif.GrantCopyOp{{Ref: c.ref, Domid: guest, Local: make([]byte, 8)}}
			if err := g.GrantCopy(ops); err != nil {
				return err
			}
			if ops[0].Status != c.want {
				bad = append(bad, fmt.Sprintf("%s: %d (%s), fake gives %d (%s)", c.name, ops[0].Status,
					xenif.GrantStatusText(ops[0].Status), c.want, xenif.GrantStatusText(c.want)))
			}
		}
		if bad != nil {
			return errors.New(strings.Join(bad, "; "))
		}
		return nil
	}())

	e, err := evtchn.Open()
	if r.check("guest/evtchn-open", err) {
		r.check("guest/evtchn-unbound-port-for-guest", func() error {
			p, err := e.BindUnboundPort(guest)
			if err != nil {
				return err
			}
			r.note("port %d allocated for dom %d", p, guest)
			return e.Unbind(p)
		}())
		r.check("guest/evtchn-close", e.Close())
	}
	domctlChecks(r, guest)
	if r.failed > 0 {
		fmt.Fprintf(out, "FAILED: %d guest check(s)\n", r.failed)
		return 1
	}
	fmt.Fprintln(out, "ALL GUEST CHECKS PASS")
	return 0
}

// domctlChecks proves what the domain holds of vscsi-autoattach rely on
// (xenif.DomainControl) against Xen: pause references are counted (two
// Pauses need two Unpauses), a paused domain's vCPU time stands still, and
// a missing domain is ESRCH. The guest is left running as it was found.
func domctlChecks(r *report, guest uint32) {
	x, err := xenctrl.Open()
	if !r.check("guest/xenctrl-open", err) {
		return
	}
	defer func() { r.check("guest/xenctrl-close", x.Close()) }()
	r.check("guest/xenctrl-info", func() error {
		in, err := x.DomainInfo(guest)
		if err != nil {
			return err
		}
		if in.Domid != guest || in.Paused || in.Dying || in.Shutdown || in.CPUTime <= 0 {
			return fmt.Errorf("unexpected info for a running guest: %+v", in)
		}
		return nil
	}())
	r.check("guest/xenctrl-pause-counts", func() error {
		if err := x.Pause(guest); err != nil {
			return err
		}
		if err := x.Pause(guest); err != nil {
			x.Unpause(guest) //nolint:errcheck // already failing
			return err
		}
		a, err := x.DomainInfo(guest)
		if err != nil {
			x.Unpause(guest) //nolint:errcheck // already failing
			x.Unpause(guest) //nolint:errcheck // already failing
			return err
		}
		time.Sleep(300 * time.Millisecond)
		b, err1 := x.DomainInfo(guest)
		err2 := x.Unpause(guest)
		c, err3 := x.DomainInfo(guest) // one reference left: still paused
		err4 := x.Unpause(guest)
		d, err5 := x.DomainInfo(guest)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return err
		}
		switch {
		case !a.Paused || !b.Paused:
			return fmt.Errorf("not paused after two Pause: %+v", a)
		case b.CPUTime != a.CPUTime:
			return fmt.Errorf("vCPU time moved while paused: %v -> %v", a.CPUTime, b.CPUTime)
		case !c.Paused:
			return errors.New("one Unpause after two Pause unpaused the domain: references are not counted")
		case d.Paused:
			return errors.New("still paused after the second Unpause")
		}
		r.note("two pause references held for 300 ms: vCPU time stood at %v", a.CPUTime)
		return nil
	}())
	r.check("guest/xenctrl-missing-domain-esrch", func() error {
		_, err := x.DomainInfo(xenif.DomidFirstReserved - 2)
		if !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("info of a missing domain: %v, want ESRCH", err)
		}
		return nil
	}())
}
