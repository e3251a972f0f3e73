package scsi

import (
	"fmt"
	"hash/fnv"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/govscsi/govscsi/backend/store"
)

// Store is the backing an emulated disk reads and writes (see backend/store).
type Store = store.Store

// MaxTransferBytes is the most one vscsiif request can carry: 128 grant
// segments of 4 KiB (feature-sg-grant). A command asking for more is refused.
const MaxTransferBytes = 128 * 4096

// AdvertisedTransferBytes is the MAXIMUM and OPTIMAL TRANSFER LENGTH the
// Block Limits VPD reports by default: half of what a request can carry.
// Linux's xen-scsifront sizes a command by the pages its scatterlist
// touches but lets the block layer build commands of sg_tablesize (128)
// segments and 1016 sectors: a 508 KiB command on a 1 KiB-block ext4 (the
// mkfs default below 512 MiB) starts mid-page and its segments end
// mid-page, so it touches more than 128 pages and fails with DID_ERROR
// ("Unable to map request_buffer", I/O errors, lost writes; seen on the
// rig). With 256 KiB commands (65 pages at most) 63 segments may end
// mid-page before that can happen.
const AdvertisedTransferBytes = 256 << 10

// DiskOptions configures NewDisk. The zero value is a usable disk.
type DiskOptions struct {
	// ID seeds the stable identifiers (NAA, serial): use something unique
	// and persistent per LUN, e.g. the backing path or "vhost/c:t:l".
	ID string
	// Product (max 16 chars, default "VIRTUAL-DISK") and Revision (max 4,
	// default "0001") are reported by INQUIRY; vendor is always "GOVSCSI".
	Product  string
	Revision string
	// Serial (VPD 0x80) defaults to 16 hex digits derived from ID.
	Serial string
	// NAA overrides the 64-bit NAA designator (VPD 0x83). Zero derives a
	// locally assigned (NAA 3) name from ID. The top nibble must be 2, 3, 5.
	NAA uint64
	// LogicalBlockSize is 512 or 4096 and a multiple of the store's; zero
	// takes the store's.
	LogicalBlockSize int
	// PhysicalBlockExp is log2(physical/logical); zero derives it from the store.
	PhysicalBlockExp uint8
	// WriteCache is the initial WCE bit: with it off every write is FUA.
	WriteCache bool
	ReadOnly   bool
	// Discard enables UNMAP and WRITE SAME with UNMAP (needs a store.Discarder).
	Discard bool
	// Rotational reports a spinning disk in VPD B1 (default: non-rotating).
	Rotational bool
	// MaxUnmapBlocks caps one UNMAP descriptor and one WRITE SAME
	// (default 1<<20 blocks; at most 0xFFFFFFFF).
	MaxUnmapBlocks uint32
	// MaxTransferBytes is the largest transfer one command may ask for
	// (default and cap: what feature-sg-grant 128 carries, MaxTransferBytes;
	// set it to the datapath's segment limit * 4096 if that is smaller).
	MaxTransferBytes int
	// AdvertisedTransferBytes is what Block Limits reports as the maximum
	// and optimal transfer (default AdvertisedTransferBytes; never more
	// than MaxTransferBytes).
	AdvertisedTransferBytes int
	// LUN is this disk's own number; ReportLUNs lists the LUNs of its
	// (channel, target) for REPORT LUNS. Nil reports only LUN.
	LUN        uint64
	ReportLUNs func() []uint64
	// Unit is the logical unit this disk is one nexus of: disks over the
	// same backing share one (lunconf.Units hands it out). Nil gives the
	// disk a logical unit of its own.
	Unit *LogicalUnit
	// Initiator names the I_T nexus's initiator port: persistent
	// reservations are registered by it, so it should stay the same for
	// the same guest vhost across backend restarts and guest reboots
	// (backend/server uses the domain's UUID and the vhost). Disks of one
	// unit with equal names are one nexus. Empty: a name of this disk's
	// own.
	Initiator string
}

// Validate reports the first problem with opts for a disk over st.
func (o DiskOptions) Validate(st Store) error {
	if st == nil {
		return fmt.Errorf("scsi: disk needs a store")
	}
	slbs := st.LogicalBlockSize()
	if o.LogicalBlockSize != 0 {
		if o.LogicalBlockSize != 512 && o.LogicalBlockSize != 4096 {
			return fmt.Errorf("scsi: logical block size %d: want 512 or 4096", o.LogicalBlockSize)
		}
		if slbs <= 0 || o.LogicalBlockSize%slbs != 0 {
			return fmt.Errorf("scsi: logical block size %d is not a multiple of the store's %d", o.LogicalBlockSize, slbs)
		}
	} else if slbs != 512 && slbs != 4096 {
		return fmt.Errorf("scsi: store block size %d: want 512 or 4096", slbs)
	}
	if o.PhysicalBlockExp > 15 {
		return fmt.Errorf("scsi: physical block exponent %d > 15", o.PhysicalBlockExp)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"product", o.Product, 16}, {"revision", o.Revision, 4}, {"serial", o.Serial, 64}} {
		if len(f.v) > f.max {
			return fmt.Errorf("scsi: %s %q longer than %d characters", f.name, f.v, f.max)
		}
		for _, r := range f.v {
			if r < 0x20 || r > 0x7E {
				return fmt.Errorf("scsi: %s %q: only printable ASCII allowed", f.name, f.v)
			}
		}
	}
	if o.NAA != 0 {
		switch o.NAA >> 60 {
		case 2, 3, 5:
		default:
			return fmt.Errorf("scsi: NAA %#016x: the NAA nibble must be 2, 3 or 5 for an 8-byte name", o.NAA)
		}
	}
	if o.Discard {
		if _, ok := st.(store.Discarder); !ok {
			return fmt.Errorf("scsi: discard requested but the store cannot discard")
		}
	}
	if o.Size(st) == 0 {
		return fmt.Errorf("scsi: store smaller than one logical block")
	}
	return nil
}

// Size returns the capacity in logical blocks a disk with these options has.
func (o DiskOptions) Size(st Store) uint64 {
	lbs := o.LogicalBlockSize
	if lbs == 0 {
		lbs = st.LogicalBlockSize()
	}
	if lbs <= 0 || st.Size() <= 0 {
		return 0
	}
	return uint64(st.Size()) / uint64(lbs)
}

// Disk is an emulated SBC direct-access LUN over a Store. Execute is safe for
// concurrent use: the store does its own locking.
type Disk struct {
	st        Store
	disc      store.Discarder // nil without discard
	zeroer    store.Zeroer    // nil if the store cannot zero in place
	lbs       uint32
	lbShift   uint8
	physExp   uint8
	ro        bool
	rotating  bool
	wceDef    bool
	maxXfer   uint32 // blocks accepted in one command
	advXfer   uint32 // blocks reported in Block Limits
	maxUnmap  uint32 // blocks
	lun       uint64
	peers     func() []uint64
	vendor    [8]byte
	product   [16]byte
	revision  [4]byte
	serial    string
	naa       uint64
	ops       [256]opEntry
	lu        *LogicalUnit
	initiator string
	capacity  atomic.Uint64 // logical blocks
	wce       atomic.Bool
	uaPending atomic.Bool
	uaMu      sync.Mutex
	uaQueue   []check
}

// TaskManagement is implemented by LUNs that take part in task management
// (vscsiif ABORT and RESET requests). The datapath type-asserts for it.
type TaskManagement interface {
	// Abort tries to cancel the command with this tag; it reports whether
	// it did. It returns promptly either way.
	Abort(tag uint64) bool
	// Reset is a LUN reset: state goes back to defaults and a unit
	// attention is raised. An error means the reset failed (the datapath
	// answers RESET with 0x2003 then).
	Reset() error
}

// NewDisk returns an emulated disk over st. Options that fail Validate are
// corrected to safe values (the store's block size, default strings, no
// discard) rather than failing: callers that want an error call Validate
// first.
func NewDisk(st Store, opts DiskOptions) LUN {
	return newDisk(st, opts)
}

func newDisk(st Store, opts DiskOptions) *Disk {
	d := &Disk{st: st, ro: opts.ReadOnly, rotating: opts.Rotational, wceDef: opts.WriteCache, lun: opts.LUN, peers: opts.ReportLUNs, lu: opts.Unit,
		initiator: opts.Initiator}
	if d.lu == nil {
		d.lu, _ = NewLogicalUnit(LogicalUnitOptions{}) // no PRStore: cannot fail
	}
	if d.initiator == "" {
		d.initiator = nexusName(d)
	}
	lbs := opts.LogicalBlockSize
	slbs := st.LogicalBlockSize()
	if lbs == 0 || (lbs != 512 && lbs != 4096) || slbs <= 0 || lbs%slbs != 0 {
		lbs = slbs
	}
	if lbs != 512 && lbs != 4096 {
		lbs = 4096 // an exotic store: I/O to it will fail cleanly with medium errors
	}
	d.lbs = uint32(lbs)
	d.lbShift = uint8(bits.TrailingZeros32(d.lbs))
	d.physExp = opts.PhysicalBlockExp
	if d.physExp == 0 || d.physExp > 15 {
		d.physExp = 0
		if p := st.PhysicalBlockSize(); p > lbs {
			d.physExp = uint8(bits.Len(uint(p/lbs)) - 1)
		}
	}
	if opts.Discard {
		d.disc, _ = st.(store.Discarder)
	}
	d.zeroer, _ = st.(store.Zeroer)
	if d.ro {
		d.disc, d.zeroer = nil, nil
	}
	xfer := opts.MaxTransferBytes
	if xfer <= 0 || xfer > MaxTransferBytes {
		xfer = MaxTransferBytes
	}
	d.maxXfer = max(1, uint32(xfer)/d.lbs)
	adv := opts.AdvertisedTransferBytes
	if adv <= 0 {
		adv = AdvertisedTransferBytes
	}
	d.advXfer = min(d.maxXfer, max(1, uint32(adv)/d.lbs))
	d.maxUnmap = opts.MaxUnmapBlocks
	if d.maxUnmap == 0 {
		d.maxUnmap = 1 << 20
	}
	d.capacity.Store(uint64(st.Size()) / uint64(d.lbs))
	d.wce.Store(opts.WriteCache)

	sum := idHash(opts.ID)
	d.naa = opts.naa()
	d.serial = sanitize(opts.Serial, 64, "")
	if d.serial == "" {
		d.serial = fmt.Sprintf("%016x", sum)
	}
	padCopy(d.vendor[:], "GOVSCSI")
	padCopy(d.product[:], sanitize(opts.Product, 16, "VIRTUAL-DISK"))
	padCopy(d.revision[:], sanitize(opts.Revision, 4, "0001"))
	d.buildOps()
	d.lu.attach(d)
	return d
}

func idHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("govscsi\x00" + id))
	return h.Sum64()
}

// naa is the disk's 64-bit NAA designator (VPD 0x83): NAA, or a locally
// assigned (NAA 3) name derived from ID.
func (o DiskOptions) naa() uint64 {
	if o.NAA != 0 && (o.NAA>>60 == 2 || o.NAA>>60 == 3 || o.NAA>>60 == 5) {
		return o.NAA
	}
	return 3<<60 | idHash(o.ID)&(1<<60-1)
}

// DeviceName is the logical unit's name as a guest sees it ("naa." and the
// NAA designator in hex, as in /dev/disk/by-id/wwn-0x...): the name its
// reservation state is kept under (backend/prstore).
func (o DiskOptions) DeviceName() string { return fmt.Sprintf("naa.%016x", o.naa()) }

// sanitize keeps printable ASCII, truncates to max and falls back to def.
func sanitize(s string, max int, def string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7E {
			return -1
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max]
	}
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

func padCopy(dst []byte, s string) {
	for i := range dst {
		dst[i] = ' '
	}
	copy(dst, s)
}

// BlockSize is the logical block size in bytes.
func (d *Disk) BlockSize() int { return int(d.lbs) }

// Capacity is the number of logical blocks.
func (d *Disk) Capacity() uint64 { return d.capacity.Load() }

// NotifyCapacityChanged re-reads the store's size (after a resize; through
// store.Refresher when the store has it) and, if the capacity changed,
// raises CAPACITY DATA HAS CHANGED so the guest re-reads it.
func (d *Disk) NotifyCapacityChanged() error {
	if r, ok := d.st.(store.Refresher); ok {
		if _, err := r.Refresh(); err != nil {
			return err
		}
	}
	c := uint64(d.st.Size()) / uint64(d.lbs)
	if d.capacity.Swap(c) != c {
		d.raiseUA(uaCapacityChanged)
	}
	return nil
}

// Reset implements TaskManagement, a logical unit reset: mode parameters
// go back to their defaults, an SPC-2 reservation is released, and the
// next command of every nexus of the unit gets BUS DEVICE RESET FUNCTION
// OCCURRED. Persistent reservations stay (SPC-4 5.13.1). Store I/O is
// synchronous and not interruptible, so commands already running complete
// normally.
func (d *Disk) Reset() error {
	u := d.lu
	u.mu.Lock()
	u.prMu.Lock()
	if u.pr.spc2 != "" {
		u.pr.spc2 = ""
		u.publish()
	}
	for n := range u.disks {
		n.wce.Store(n.wceDef)
		n.uaMu.Lock()
		n.uaQueue = n.uaQueue[:0] // a reset supersedes older attentions
		n.uaMu.Unlock()
		n.raiseUA(uaReset)
	}
	u.prMu.Unlock()
	u.mu.Unlock()
	return nil
}

// Abort implements TaskManagement. An emulated command runs to completion
// inside Execute without a cancellation point, so there is never anything
// to cancel: Abort returns false at once and the datapath answers the
// command when Execute returns.
func (d *Disk) Abort(tag uint64) bool { return false }

// Close ends the nexus (its SPC-2 reservation with it) and closes the
// store.
func (d *Disk) Close() error {
	d.lu.detachDisk(d)
	return d.st.Close()
}

func (d *Disk) raiseUA(c check) {
	d.uaMu.Lock()
	defer d.uaMu.Unlock()
	for _, q := range d.uaQueue {
		if q.asc == c.asc && q.ascq == c.ascq {
			return
		}
	}
	if len(d.uaQueue) < 8 {
		d.uaQueue = append(d.uaQueue, c)
	}
	d.uaPending.Store(true)
}

// takeUA pops the oldest pending unit attention.
func (d *Disk) takeUA() (check, bool) {
	if !d.uaPending.Load() {
		return good, false
	}
	d.uaMu.Lock()
	defer d.uaMu.Unlock()
	if len(d.uaQueue) == 0 {
		d.uaPending.Store(false)
		return good, false
	}
	c := d.uaQueue[0]
	d.uaQueue = append(d.uaQueue[:0], d.uaQueue[1:]...)
	d.uaPending.Store(len(d.uaQueue) > 0)
	return c, true
}

// Execute implements LUN.
func (d *Disk) Execute(cmd *Command, res *Result) {
	*res = Result{}
	if len(cmd.CDB) == 0 {
		invalidOpcode().apply(res)
		return
	}
	e := &d.ops[cmd.CDB[0]]
	if e.fn == nil {
		invalidOpcode().apply(res)
		return
	}
	if len(cmd.CDB) < int(e.cdbLen) {
		invalidCDB(len(cmd.CDB)-1, -1).apply(res)
		return
	}
	cdb := cmd.CDB[:e.cdbLen]
	// NACA (control byte bit 2): we do not support ACA (SAM-5 5.9.1.1).
	if cdb[len(cdb)-1]&0x04 != 0 {
		invalidCDB(len(cdb)-1, 2).apply(res)
		return
	}
	// Unit attentions are reported on everything except the commands SAM
	// exempts, so a guest's probe (INQUIRY, REPORT LUNS) is never disturbed.
	if !e.noUA {
		if ua, ok := d.takeUA(); ok {
			ua.apply(res)
			return
		}
	}
	switch e.lock {
	case lockShared:
		d.lu.mu.RLock()
		d.run(e, cdb, cmd, res)
		d.lu.mu.RUnlock()
	case lockExclusive:
		d.lu.mu.Lock()
		d.run(e, cdb, cmd, res)
		d.lu.mu.Unlock()
	default:
		d.run(e, cdb, cmd, res)
	}
	if res.DataLen > len(cmd.Data) { // cannot happen; belt and braces for the datapath
		res.DataLen = len(cmd.Data)
	}
}

// run checks the command against the unit's reservations and runs it.
// Without a reservation the check is one atomic load.
func (d *Disk) run(e *opEntry, cdb []byte, cmd *Command, res *Result) {
	if v := d.lu.resv.Load(); v != nil && v.conflict(d.initiator, d.accessOf(e, cdb), e.spc2OK) {
		reservationConflict.apply(res)
		return
	}
	e.fn(d, cdb, cmd, res).apply(res)
}

// Null is a LUN that completes every command GOOD without moving data: the
// floor for datapath benchmarks.
type Null struct{}

// NewNull returns a Null LUN.
func NewNull() LUN { return Null{} }

// Execute implements LUN.
func (Null) Execute(cmd *Command, res *Result) { *res = Result{} }

// Close implements LUN.
func (Null) Close() error { return nil }
