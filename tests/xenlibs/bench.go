package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/govscsi/govscsi/libxlgo/evtchn"
	"github.com/govscsi/govscsi/libxlgo/gnttab"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// timeIt runs f for about d (at least 10 times) and prints the mean time per
// call. A failing call stops the run and is returned.
func timeIt(out io.Writer, name string, d time.Duration, f func() error) error {
	n := 0
	start := time.Now()
	for n < 10 || time.Since(start) < d {
		if err := f(); err != nil {
			return fmt.Errorf("bench %s: %w", name, err)
		}
		n++
	}
	el := time.Since(start)
	fmt.Fprintf(out, "BENCH: %s: %d ops, %.1f us/op\n", name, n, float64(el.Microseconds())/float64(n))
	return nil
}

// runBench times grant copy, mapping and event channels inside this domain.
func runBench(out io.Writer, self uint32) int {
	fail := func(err error) int { fmt.Fprintf(out, "FAIL: bench: %v\n", err); return 1 }
	g, err := gnttab.Open()
	if err != nil {
		return fail(err)
	}
	defer g.Close()
	sh, err := openSharer()
	if err != nil {
		return fail(err)
	}
	defer sh.close()
	mem, refs, err := sh.share(self, 8, true)
	if err != nil {
		return fail(err)
	}
	defer sh.unshare(mem)
	const d = 2 * time.Second

	statusErr := func(ops []xenif.GrantCopyOp) error {
		for i, op := range ops {
			if op.Status != 0 {
				return fmt.Errorf("op %d: %s", i, xenif.GrantStatusText(op.Status))
			}
		}
		return nil
	}
	// One 4 KiB page per op, 8 ops per ioctl (a 32 KiB request).
	local := make([]byte, 8*4096)
	ops := make([]xenif.GrantCopyOp, 8)
	for i := range ops {
		ops[i] = xenif.GrantCopyOp{Ref: refs[i], Domid: self, Local: local[i*4096 : (i+1)*4096]}
	}
	steps := []struct {
		name string
		f    func() error
	}{
		{"grant-copy 8x4KiB from guest, one ioctl", func() error {
			if err := g.GrantCopy(ops); err != nil {
				return err
			}
			return statusErr(ops)
		}},
		{"grant-copy 1x512B to guest", func() error {
			one := []xenif.GrantCopyOp{{Ref: refs[0], Domid: self, ToGuest: true, Local: local[:512]}}
			if err := g.GrantCopy(one); err != nil {
				return err
			}
			return statusErr(one)
		}},
		{"map+unmap 1 page", func() error {
			m, err := g.MapGrantRef(self, refs[0], true)
			if err != nil {
				return err
			}
			return g.Unmap(m)
		}},
		{"map+unmap 8 pages", func() error {
			m, err := g.MapGrantRefs(self, refs, true)
			if err != nil {
				return err
			}
			return g.Unmap(m)
		}},
	}
	for _, s := range steps {
		if err := timeIt(out, s.name, d, s.f); err != nil {
			return fail(err)
		}
	}

	a, err := evtchn.Open()
	if err != nil {
		return fail(err)
	}
	defer a.Close()
	b, err := evtchn.Open()
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	pa, err := a.BindUnboundPort(self)
	if err != nil {
		return fail(err)
	}
	pb, err := b.BindInterdomain(self, pa)
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	if _, err := b.WaitPending(ctx); err != nil { // the bind event
		return fail(err)
	}
	b.Unmask(pb)
	err = timeIt(out, "evtchn notify -> pending -> unmask -> notify back -> pending -> unmask", d, func() error {
		if err := a.Notify(pa); err != nil {
			return err
		}
		if _, err := b.WaitPending(ctx); err != nil {
			return err
		}
		if err := b.Unmask(pb); err != nil {
			return err
		}
		if err := b.Notify(pb); err != nil {
			return err
		}
		if _, err := a.WaitPending(ctx); err != nil {
			return err
		}
		return a.Unmask(pa)
	})
	if err != nil {
		return fail(err)
	}
	return 0
}
