package scsi

import (
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
)

// LogicalUnit is what every I_T nexus of one logical unit shares: a LUN
// attached to several guests (the same backing file or block device) is
// one logical unit with one reservation state, and each guest vhost that
// has it is a Disk of its own, its I_T nexus (unit attentions, mode
// parameters, its own descriptor). lunconf.Units hands the same
// LogicalUnit to every attachment of one backing.
//
// mu orders the commands that must not interleave: medium writes hold it
// shared; COMPARE AND WRITE, PERSISTENT RESERVE OUT and RESERVE/RELEASE
// hold it exclusively. So the compare and the write of a COMPARE AND WRITE
// are atomic against every writer of the unit, and a reservation change
// (a PREEMPT AND ABORT fencing another guest) takes effect only once every
// write already past its reservation check has finished: none of the
// fenced nexus's writes lands after the command completes.
type LogicalUnit struct {
	mu sync.RWMutex

	// resv is the reservation state commands are checked against, an
	// immutable snapshot swapped on every change; nil when there is no
	// reservation of any kind, so the check costs one atomic load.
	resv atomic.Pointer[resvView]

	prMu    sync.Mutex // guards pr, disks; taken inside mu
	pr      prState
	disks   map[*Disk]struct{}
	persist PRStore
	detach  func()
}

// LogicalUnitOptions configures NewLogicalUnit.
type LogicalUnitOptions struct {
	// PR saves the persistent reservation state on every change and
	// gives it back when the unit is created again (another process after
	// a handover or a restart, or a host reboot with APTPL). Nil keeps
	// the state in memory only.
	PR PRStore
	// OnDetach is called after each Disk of the unit closes (the registry
	// that shares units counts them).
	OnDetach func()
}

// PRStore keeps a logical unit's persistent reservation state.
type PRStore interface {
	// Load returns the saved state (ok false when there is none).
	Load() (st PRState, ok bool, err error)
	// Save replaces the saved state. An error fails the command that
	// changed the state, and the change is not made: it is returned only
	// when the state could not be kept as the initiator asked (APTPL);
	// failures to keep a non-APTPL state for the next process are the
	// store's to log.
	Save(st PRState) error
}

// PRState is a logical unit's reservation state as a PRStore keeps it.
type PRState struct {
	Generation    uint32
	APTPL         bool
	Registrations []PRRegistration
	Reservation   *PRReservation
}

// PRRegistration is one registered I_T nexus.
type PRRegistration struct {
	Initiator      string
	Key            uint64
	AllTargetPorts bool
}

// PRReservation is the persistent reservation.
type PRReservation struct {
	// Holder is the holding initiator; empty for the All Registrants
	// types, whose holders are every registrant.
	Holder string
	Type   uint8
}

// NewLogicalUnit returns a logical unit with no nexus yet, with the
// reservation state its PRStore kept (an unreadable or invalid state is
// an error: an operator has to look at it, docs/backend.md §9.2).
func NewLogicalUnit(opts LogicalUnitOptions) (*LogicalUnit, error) {
	u := &LogicalUnit{disks: map[*Disk]struct{}{}, persist: opts.PR, detach: opts.OnDetach}
	if opts.PR != nil {
		st, ok, err := opts.PR.Load()
		if err != nil {
			return nil, err
		}
		if ok {
			if u.pr, err = stateFrom(st); err != nil {
				return nil, err
			}
			u.publish()
		}
	}
	return u, nil
}

func (u *LogicalUnit) attach(d *Disk) {
	u.prMu.Lock()
	u.disks[d] = struct{}{}
	u.prMu.Unlock()
}

// detachDisk forgets d (its nexus is gone): its SPC-2 reservation goes
// with it (I_T nexus loss releases it, SPC-2 5.5.1); persistent
// reservations stay. SPC-2 reservations live in memory only (PRState has
// none), so nothing is saved.
func (u *LogicalUnit) detachDisk(d *Disk) {
	u.mu.Lock()
	u.prMu.Lock()
	delete(u.disks, d)
	if u.pr.spc2 == d.initiator && !u.otherDiskOf(d.initiator) {
		u.pr.spc2 = ""
		u.publish()
	}
	u.prMu.Unlock()
	u.mu.Unlock()
	if u.detach != nil {
		u.detach()
	}
}

// otherDiskOf reports whether an attached disk is the initiator's nexus.
func (u *LogicalUnit) otherDiskOf(initiator string) bool {
	for d := range u.disks {
		if d.initiator == initiator {
			return true
		}
	}
	return false
}

// State returns the current reservation state (for tests and status).
func (u *LogicalUnit) State() PRState {
	u.prMu.Lock()
	defer u.prMu.Unlock()
	return u.pr.export()
}

// uaFor raises c on every attached disk whose initiator is in set.
func (u *LogicalUnit) uaFor(set map[string]bool, c check) {
	for d := range u.disks {
		if set[d.initiator] {
			d.raiseUA(c)
		}
	}
}

// commit makes next the state (prMu held): saved first (unless only the
// in-memory SPC-2 part changed); on a save error nothing changes and the
// error is returned.
func (u *LogicalUnit) commit(next prState) error {
	if u.persist != nil && !next.samePersistent(&u.pr) {
		if err := u.persist.Save(next.export()); err != nil {
			return err
		}
	}
	u.pr = next
	u.publish()
	return nil
}

// publish swaps in the snapshot the conflict checks read (prMu held).
func (u *LogicalUnit) publish() {
	s := &u.pr
	if s.resType == 0 && s.spc2 == "" {
		u.resv.Store(nil)
		return
	}
	v := &resvView{typ: s.resType, holder: s.holder, spc2: s.spc2}
	for _, r := range s.regs {
		v.registered = append(v.registered, r.initiator)
	}
	u.resv.Store(v)
}

// NexusName is a Disk's initiator port name when DiskOptions.Initiator is
// empty: unique to the disk, so it is a nexus of its own.
func nexusName(d *Disk) string { return fmt.Sprintf("disk@%p", d) }

// sasAddress is the SAS address READ FULL STATUS reports in an
// initiator's TransportID: NAA 3 (locally assigned) from a hash of the
// initiator port name (xen-scsiback reports SAS TransportIDs for its naa.
// targets too).
func sasAddress(initiator string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("govscsi-initiator\x00" + initiator))
	return 3<<60 | h.Sum64()&(1<<60-1)
}
