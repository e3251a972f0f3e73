package xenif

import "time"

// DomainControl pauses, unpauses and inspects domains (libxenctrl's
// xc_domain_pause, xc_domain_unpause, xc_domain_getinfo).
//
// Xen counts controller pauses per domain: a domain runs only once every
// Pause has been matched by an Unpause. xl creates, restores and receives
// domains paused and unpauses them at the end, so a toolstack that takes
// its own pause reference early keeps the guest from running until it
// drops that reference, whatever xl does meanwhile (docs/host-integration.md,
// "Holding a new domain").
type DomainControl interface {
	Pause(domid uint32) error
	Unpause(domid uint32) error
	// DomainInfo describes domid; an error wrapping ESRCH means no such
	// domain.
	DomainInfo(domid uint32) (DomainInfo, error)
	Close() error
}

// Shutdown reasons (xen/include/public/sched.h SHUTDOWN_*), in
// DomainInfo.ShutdownReason when Shutdown is set.
const (
	ShutdownPoweroff  = 0
	ShutdownReboot    = 1
	ShutdownSuspend   = 2
	ShutdownCrash     = 3
	ShutdownWatchdog  = 4
	ShutdownSoftReset = 5
)

// DomainInfo is what Xen reports about a domain.
type DomainInfo struct {
	Domid    uint32
	Paused   bool // at least one controller pause reference is held
	Running  bool // a vCPU is running right now
	Blocked  bool
	Dying    bool
	Shutdown bool
	Crashed  bool
	// ShutdownReason is meaningful only with Shutdown.
	ShutdownReason int
	// CPUTime is the vCPU time the domain has used since it was created:
	// zero means its vCPUs have never run (a held domain was caught in time).
	CPUTime time.Duration
}
