package xenfake

import (
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Domains is a fake xenif.DomainControl: it counts controller pause
// references per domain as Xen does, and lets a test say when a domain's
// vCPUs would have run (Tick), so a hold that came too late is visible as
// CPUTime > 0.
type Domains struct {
	mu   sync.Mutex
	doms map[uint32]*fakeDomain
	// PauseErr, if set, is returned by Pause (tests of failure paths).
	PauseErr error
}

type fakeDomain struct {
	pauses   int
	most     int // the most references ever held at once
	cpu      time.Duration
	shutdown int // -1: running
}

var _ xenif.DomainControl = (*Domains)(nil)

// NewDomains returns an empty fake.
func NewDomains() *Domains { return &Domains{doms: map[uint32]*fakeDomain{}} }

// Create adds a domain with pauses references held (xl creates domains
// with one, and drops it at the end of xl create).
func (d *Domains) Create(domid uint32, pauses int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.doms[domid] = &fakeDomain{pauses: pauses, most: pauses, shutdown: -1}
}

// Destroy removes a domain.
func (d *Domains) Destroy(domid uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.doms, domid)
}

// SetShutdown marks a domain shut down with reason (xenif.Shutdown*).
func (d *Domains) SetShutdown(domid uint32, reason int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dm := d.doms[domid]; dm != nil {
		dm.shutdown = reason
	}
}

// Tick lets every unpaused domain run for dt of vCPU time.
func (d *Domains) Tick(dt time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dm := range d.doms {
		if dm.pauses == 0 && dm.shutdown < 0 {
			dm.cpu += dt
		}
	}
}

// Pauses returns the pause references held on domid (-1: no such domain).
func (d *Domains) Pauses(domid uint32) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dm := d.doms[domid]; dm != nil {
		return dm.pauses
	}
	return -1
}

// MostPauses returns the most references ever held at once on domid (-1:
// no such domain): more than the creator's one means someone held it.
func (d *Domains) MostPauses(domid uint32) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dm := d.doms[domid]; dm != nil {
		return dm.most
	}
	return -1
}

func (d *Domains) get(op string, domid uint32) (*fakeDomain, error) {
	dm := d.doms[domid]
	if dm == nil {
		return nil, fmt.Errorf("xenfake: %s domain %d: %w", op, domid, syscall.ESRCH)
	}
	return dm, nil
}

// Pause takes a reference.
func (d *Domains) Pause(domid uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.PauseErr != nil {
		return d.PauseErr
	}
	dm, err := d.get("pause", domid)
	if err != nil {
		return err
	}
	dm.pauses++
	dm.most = max(dm.most, dm.pauses)
	return nil
}

// Unpause drops a reference; Xen refuses one that is not held (EINVAL).
func (d *Domains) Unpause(domid uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dm, err := d.get("unpause", domid)
	if err != nil {
		return err
	}
	if dm.pauses == 0 {
		return fmt.Errorf("xenfake: unpause domain %d: not paused: %w", domid, syscall.EINVAL)
	}
	dm.pauses--
	return nil
}

// DomainInfo reports a domain.
func (d *Domains) DomainInfo(domid uint32) (xenif.DomainInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dm, err := d.get("getinfo", domid)
	if err != nil {
		return xenif.DomainInfo{}, err
	}
	in := xenif.DomainInfo{Domid: domid, Paused: dm.pauses > 0, Blocked: dm.pauses == 0, CPUTime: dm.cpu}
	if dm.shutdown >= 0 {
		in.Shutdown, in.ShutdownReason, in.Blocked = true, dm.shutdown, false
	}
	return in, nil
}

// Close does nothing.
func (d *Domains) Close() error { return nil }
