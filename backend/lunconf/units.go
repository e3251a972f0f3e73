package lunconf

import (
	"fmt"
	"sync"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/store"
)

// Units makes every attachment of one backing one logical unit: a file or
// block device attached to several guests (or twice to one) gets one
// scsi.LogicalUnit, so the guests share its reservations and COMPARE AND
// WRITE is atomic among them, while each attachment stays its own I_T
// nexus (a Disk with its own descriptor). Backings are recognised by
// store.Identity (device and inode, or the block device number, from the
// open descriptor), not by path, so /dev/sdb and /dev/disk/by-id/... are
// one unit. A unit lives while one of its disks is open. RAM disks are
// never shared: each gets a unit of its own. The zero Units shares but
// keeps reservations in memory only. One Units serves a whole daemon.
type Units struct {
	// PR gives a logical unit the store of its reservation state, by the
	// unit's device name (scsi.DiskOptions.DeviceName) and a description
	// of the backing for the operator (prstore.Dirs.For). Nil: in memory.
	PR func(name, backing string) (scsi.PRStore, error)

	mu sync.Mutex
	m  map[store.Identity]*unitRef
}

type unitRef struct {
	lu   *scsi.LogicalUnit
	id   string // scsi.DiskOptions.ID of the first attachment: the unit's identity
	refs int
}

// Len is the number of shared units open (for tests and status).
func (u *Units) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}

// attach gives disk its logical unit: the existing one of st's backing
// (disk then takes that unit's ID, so every guest sees the same NAA name
// and serial), or a new one with its saved reservation state.
func (u *Units) attach(disk *scsi.DiskOptions, st store.Store, backing string) error {
	ider, shared := st.(store.Identifier)
	if !shared {
		lu, err := u.newUnit(disk.ID, backing, nil)
		disk.Unit = lu
		return err
	}
	ident, err := ider.Identity()
	if err != nil {
		return fmt.Errorf("lunconf: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if r := u.m[ident]; r != nil {
		r.refs++
		disk.Unit, disk.ID = r.lu, r.id
		return nil
	}
	r := &unitRef{id: disk.ID, refs: 1}
	lu, err := u.newUnit(disk.ID, backing, func() { u.detach(ident, r) })
	if err != nil {
		return err
	}
	r.lu = lu
	if u.m == nil {
		u.m = map[store.Identity]*unitRef{}
	}
	u.m[ident] = r
	disk.Unit = lu
	return nil
}

func (u *Units) newUnit(id, backing string, onDetach func()) (*scsi.LogicalUnit, error) {
	var ps scsi.PRStore
	if u.PR != nil {
		var err error
		if ps, err = u.PR(scsi.DiskOptions{ID: id}.DeviceName(), backing); err != nil {
			return nil, err
		}
	}
	lu, err := scsi.NewLogicalUnit(scsi.LogicalUnitOptions{PR: ps, OnDetach: onDetach})
	if err != nil {
		return nil, fmt.Errorf("lunconf: %s: %w", backing, err)
	}
	return lu, nil
}

// detach counts one disk of r's unit closed.
func (u *Units) detach(ident store.Identity, r *unitRef) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r.refs--
	if r.refs == 0 && u.m[ident] == r {
		delete(u.m, ident)
	}
}
