package scsi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/backend/store"
)

// The shadow model of the reservation state machine: written from the
// SPC-4 text (5.13, 6.15, 6.16, table 63; SBC-3 table 13; SPC-2 5.5.1)
// as plainly as possible and independently of pr.go. Random sequences of
// commands from several nexuses run against real Disks sharing one
// LogicalUnit; every status, sense, PR IN data byte and unit attention is
// checked against the model, and the saved state against the unit's.

const (
	shadowNexuses = 4
	noNexus       = -1
	allNexuses    = -2 // holder of an All Registrants reservation
)

type shadowUA struct{ asc, ascq byte }

type shadow struct {
	gen    uint32
	aptpl  bool
	key    map[int]uint64 // registered nexuses
	order  []int          // registration order
	allTg  map[int]bool
	rtype  uint8
	holder int // nexus, noNexus, or allNexuses
	spc2   int
	ua     [shadowNexuses][]shadowUA
}

func newShadow() *shadow {
	return &shadow{key: map[int]uint64{}, allTg: map[int]bool{}, holder: noNexus, spc2: noNexus}
}

func (m *shadow) registered(n int) bool { _, ok := m.key[n]; return ok }

func (m *shadow) addUA(n int, u shadowUA) {
	q := m.ua[n]
	for _, x := range q {
		if x == u {
			return
		}
	}
	if len(q) < 8 {
		m.ua[n] = append(q, u)
	}
}

func (m *shadow) unreg(n int) {
	delete(m.key, n)
	delete(m.allTg, n)
	m.order = slices.DeleteFunc(m.order, func(x int) bool { return x == n })
}

// The answer the model expects.
type want struct {
	status byte
	asc    int // -1: any (GOOD, CONFLICT)
	ascq   int
	key    byte
	data   []byte // PR IN / REQUEST SENSE data, nil: not checked
}

var (
	wGood     = want{status: StatusGood, asc: -1}
	wConflict = want{status: StatusReservationConflict, asc: -1}
)

func wCheck(key byte, asc, ascq int) want {
	return want{status: StatusCheckCondition, key: key, asc: asc, ascq: ascq}
}

// holdsFor: the reservation type gives nexus n full access.
func (m *shadow) fullAccess(n int) bool {
	switch m.rtype {
	case 0:
		return true
	case prWriteExclusive, prExclusiveAccess:
		return m.holder == n
	}
	return m.registered(n) // Registrants Only, All Registrants
}

// access answers whether a command of kind k from n passes the reservations
// (SPC-4 table 63 / SBC-3 table 13 columns).
func (m *shadow) access(n int, k string) bool {
	if m.spc2 != noNexus && m.spc2 != n {
		return k == "inquiry" || k == "request-sense" || k == "reserve6" || k == "release6"
	}
	switch k {
	case "inquiry", "request-sense", "tur", "prin", "prout", "reserve6", "release6":
		return true
	}
	if m.fullAccess(n) {
		return true
	}
	we := m.rtype == prWriteExclusive || m.rtype == prWriteExclusiveRegs || m.rtype == prWriteExclusiveAll
	switch k {
	case "read", "modesense":
		return we
	}
	return false // write, synccache
}

func (m *shadow) holderKey() uint64 {
	if m.holder >= 0 {
		return m.key[m.holder]
	}
	return 0
}

// prOut is PERSISTENT RESERVE OUT in the model.
func (m *shadow) prOut(n int, sa, scope, typ byte, plen int, p []byte) want {
	if sa >= 7 {
		return wCheck(KeyIllegalRequest, 0x24, 0)
	}
	if plen < 24 {
		return wCheck(KeyIllegalRequest, 0x1A, 0)
	}
	if p[20]&0x08 != 0 {
		return wCheck(KeyIllegalRequest, 0x26, 0)
	}
	if plen != 24 {
		return wCheck(KeyIllegalRequest, 0x1A, 0)
	}
	validType := typ == 1 || typ == 3 || typ == 5 || typ == 6 || typ == 7 || typ == 8
	if (sa == 1 || sa == 2 || sa == 4 || sa == 5) && scope != 0 {
		return wCheck(KeyIllegalRequest, 0x24, 0)
	}
	if (sa == 1 || sa == 4 || sa == 5) && !validType {
		return wCheck(KeyIllegalRequest, 0x24, 0)
	}
	resKey, saKey := binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])
	aptpl, allTg := p[20]&1 != 0, p[20]&4 != 0
	mine, reg := m.key[n]
	// Table 40 of SPC-4 (REGISTER), the same checks for the others.
	switch sa {
	case 0: // REGISTER
		if !reg && resKey != 0 || reg && resKey != mine {
			return wConflict
		}
	case 6: // REGISTER AND IGNORE EXISTING KEY
	default:
		if !reg || resKey != mine {
			return wConflict
		}
	}
	others := func(f func(o int) bool) []int {
		var r []int
		for _, o := range m.order {
			if o != n && f(o) {
				r = append(r, o)
			}
		}
		return r
	}
	all := func(int) bool { return true }
	switch sa {
	case 0, 6:
		if !reg && saKey == 0 {
			return wGood
		}
		switch {
		case !reg:
			m.key[n] = saKey
			m.allTg[n] = allTg
			m.order = append(m.order, n)
		case saKey != 0:
			m.key[n] = saKey
		default:
			wasHolder := m.holder == n
			m.unreg(n)
			if m.rtype != 0 && m.holder == allNexuses && len(m.key) == 0 {
				m.rtype, m.holder = 0, noNexus
			}
			if wasHolder {
				if m.rtype == prWriteExclusiveRegs || m.rtype == prExclusiveAccessRegs {
					for _, o := range m.order {
						m.addUA(o, shadowUA{0x2A, 0x04})
					}
				}
				m.rtype, m.holder = 0, noNexus
			}
		}
		m.gen++
		m.aptpl = aptpl
	case 1: // RESERVE
		if m.rtype == 0 {
			m.rtype, m.holder = typ, n
			if typ == 7 || typ == 8 {
				m.holder = allNexuses
			}
			return wGood
		}
		holder := m.holder == n || m.holder == allNexuses
		if !holder || m.rtype != typ {
			return wConflict
		}
	case 2: // RELEASE
		holder := m.holder == n || m.holder == allNexuses
		if m.rtype == 0 || !holder {
			return wGood
		}
		if typ != m.rtype {
			return wCheck(KeyIllegalRequest, 0x26, 0x04)
		}
		if m.rtype != 1 && m.rtype != 3 {
			for _, o := range others(all) {
				m.addUA(o, shadowUA{0x2A, 0x04})
			}
		}
		m.rtype, m.holder = 0, noNexus
	case 3: // CLEAR
		for _, o := range others(all) {
			m.addUA(o, shadowUA{0x2A, 0x03})
		}
		for _, o := range slices.Clone(m.order) {
			m.unreg(o)
		}
		m.rtype, m.holder = 0, noNexus
		m.gen++
	case 4, 5: // PREEMPT, PREEMPT AND ABORT
		withKey := func(o int) bool { return m.key[o] == saKey }
		matches := 0
		for _, o := range m.order {
			if m.key[o] == saKey {
				matches++
			}
		}
		drop := func(victims []int) {
			for _, o := range victims {
				m.unreg(o)
				m.addUA(o, shadowUA{0x2A, 0x05})
			}
		}
		newRes := func() {
			m.rtype, m.holder = typ, n
			if typ == 7 || typ == 8 {
				m.holder = allNexuses
			}
		}
		switch {
		case m.rtype == 0:
			if saKey == 0 {
				return wCheck(KeyIllegalRequest, 0x26, 0)
			}
			if matches == 0 {
				return wConflict
			}
			drop(others(withKey))
		case m.holder == allNexuses:
			if saKey == 0 {
				drop(others(all))
				newRes()
			} else {
				if matches == 0 {
					return wConflict
				}
				drop(others(withKey))
			}
		default:
			if saKey == 0 {
				return wCheck(KeyIllegalRequest, 0x26, 0)
			}
			if saKey != m.holderKey() {
				if matches == 0 {
					return wConflict
				}
				drop(others(withKey))
				break
			}
			old := m.rtype
			drop(others(withKey))
			newRes()
			if old != typ {
				for _, o := range others(all) {
					m.addUA(o, shadowUA{0x2A, 0x04})
				}
			}
		}
		m.gen++
	}
	return wGood
}

func (m *shadow) prIn(sa byte, alloc int) want {
	if sa > 3 {
		return wCheck(KeyIllegalRequest, 0x24, 0)
	}
	var b []byte
	u32 := func(v uint32) { b = binary.BigEndian.AppendUint32(b, v) }
	u64 := func(v uint64) { b = binary.BigEndian.AppendUint64(b, v) }
	switch sa {
	case 0:
		u32(m.gen)
		u32(uint32(8 * len(m.order)))
		for _, o := range m.order {
			u64(m.key[o])
		}
	case 1:
		u32(m.gen)
		if m.rtype == 0 {
			u32(0)
			break
		}
		u32(16)
		u64(m.holderKey())
		b = append(b, 0, 0, 0, 0, 0, m.rtype, 0, 0)
	case 2:
		a := byte(0)
		if m.aptpl {
			a = 1
		}
		b = []byte{0, 8, 0x15, 0x90 | a, 0xEA, 0x01, 0, 0}
	case 3:
		u32(m.gen)
		u32(uint32(48 * len(m.order)))
		for _, o := range m.order {
			u64(m.key[o])
			b = append(b, 0, 0, 0, 0)
			f, t := byte(0), byte(0)
			if m.allTg[o] {
				f |= 2
			}
			if m.holder == o || m.holder == allNexuses && m.rtype != 0 {
				f |= 1
				t = m.rtype
			}
			b = append(b, f, t, 0, 0, 0, 0, 0, 1, 0, 0, 0, 24, 6, 0, 0, 0)
			u64(sasAddress(shadowName(o)))
			b = append(b, make([]byte, 12)...)
		}
	}
	w := wGood
	w.data = b[:min(len(b), alloc)]
	return w
}

func shadowName(n int) string { return fmt.Sprintf("vm:shadow-%d/vhost:0", n) }

// memPR is a PRStore in memory that counts saves.
type memPR struct {
	st    PRState
	ok    bool
	saves int
}

func (s *memPR) Load() (PRState, bool, error) { return s.st, s.ok, nil }
func (s *memPR) Save(st PRState) error        { s.st, s.ok = st, true; s.saves++; return nil }

// keepOpen is a store whose Close leaves the backing open (each disk of a
// shared unit has its own descriptor in the daemon).
type keepOpen struct{ store.Store }

func (keepOpen) Close() error { return nil }

// shadowRig is the system under test: disks of one unit over one store.
type shadowRig struct {
	t     *testing.T
	st    store.Store
	pr    *memPR
	unit  *LogicalUnit
	disks [shadowNexuses]*Disk
}

func (r *shadowRig) start() {
	u, err := NewLogicalUnit(LogicalUnitOptions{PR: r.pr})
	if err != nil {
		r.t.Fatal(err)
	}
	r.unit = u
	for i := range r.disks {
		// each nexus its own "descriptor" of the one backing
		r.disks[i] = newDisk(keepOpen{r.st}, DiskOptions{Unit: u, Initiator: shadowName(i), WriteCache: true})
	}
}

type shadowStep struct {
	n    int
	what string
	cdb  []byte
	dir  Direction
	data []byte
}

func prOutParams(resKey, saKey uint64, flags byte) []byte {
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p, resKey)
	binary.BigEndian.PutUint64(p[8:], saKey)
	p[20] = flags
	return p
}

func prOutCDB(sa, scopeType byte, plen uint32) []byte {
	c := []byte{OpPersistentResOut, sa, scopeType, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[5:], plen)
	return c
}

// TestReservationShadowModel: seeds x steps random commands.
func TestReservationShadowModel(t *testing.T) {
	seqs, steps := 3000, 80
	if testing.Short() {
		seqs = 300
	}
	keys := []uint64{0xAAAA, 0xBBBB, 0xCCCC}
	types := []byte{1, 3, 5, 6, 7, 8}
	for seed := 0; seed < seqs; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
		st, _ := store.NewRAM(64*512, store.RAMOptions{})
		rig := &shadowRig{t: t, st: st, pr: &memPR{}}
		rig.start()
		m := newShadow()
		var log []string
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("seed %d step %d: %s\nsequence:\n  %s", seed, len(log), fmt.Sprintf(format, a...), strings.Join(log, "\n  "))
		}
		for step := 0; step < steps; step++ {
			n := rng.IntN(shadowNexuses)
			pickKey := func() uint64 {
				switch rng.IntN(4) {
				case 0:
					return 0
				case 1:
					return m.key[n] // its own (0 if unregistered)
				}
				return keys[rng.IntN(len(keys))]
			}
			var s shadowStep
			var w want
			decided := true // w is set; false: a plain command, w from the access rules
			kind := ""
			switch op := rng.IntN(20); {
			case op < 8: // PERSISTENT RESERVE OUT, mostly well formed
				sa := []byte{0, 0, 6, 1, 1, 2, 3, 4, 4, 5}[rng.IntN(10)]
				typ := types[rng.IntN(len(types))]
				scope := byte(0)
				flags := byte(0)
				if rng.IntN(3) == 0 {
					flags |= 0x01 // APTPL
				}
				if rng.IntN(5) == 0 {
					flags |= 0x04 // ALL_TG_PT
				}
				plen := 24
				switch rng.IntN(25) {
				case 0:
					typ = []byte{0, 2, 4, 9, 15}[rng.IntN(5)]
				case 1:
					scope = 1
				case 2:
					plen = []int{0, 23, 32}[rng.IntN(3)]
				case 3:
					flags |= 0x08 // SPEC_I_PT
				case 4:
					sa = 7 + byte(rng.IntN(25))
				}
				p := prOutParams(pickKey(), pickKey(), flags)
				for len(p) < plen {
					p = append(p, 0)
				}
				s = shadowStep{n: n, what: fmt.Sprintf("PR OUT sa %d type %d scope %d key %x sakey %x flags %#x plen %d", sa, typ, scope,
					binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:]), flags, plen),
					cdb: prOutCDB(sa&0x1F, scope<<4|typ, uint32(plen)), dir: DirToDevice, data: p[:plen]}
				kind = "prout"
				w = m.uaOr(n, kind, func() want {
					if !m.access(n, kind) {
						return wConflict // another nexus's SPC-2 reservation
					}
					return m.prOut(n, sa&0x1F, scope, typ, plen, p)
				})
			case op < 11:
				sa := byte(rng.IntN(5))
				alloc := []int{4, 8, 16, 24, 255, 1024}[rng.IntN(6)]
				c := []byte{OpPersistentResIn, sa, 0, 0, 0, 0, 0, byte(alloc >> 8), byte(alloc), 0}
				s = shadowStep{n: n, what: fmt.Sprintf("PR IN sa %d alloc %d", sa, alloc), cdb: c, dir: DirFromDevice, data: make([]byte, 1024)}
				kind = "prin"
				w = m.uaOr(n, kind, func() want {
					if !m.access(n, kind) {
						return wConflict
					}
					return m.prIn(sa, alloc)
				})
			case op < 13:
				s = shadowStep{n: n, what: "READ(10)", cdb: cdb10(OpRead10, 0, uint32(rng.IntN(64)), 1), dir: DirFromDevice, data: make([]byte, 512)}
				kind, decided = "read", false
			case op < 15:
				s = shadowStep{n: n, what: "WRITE(10)", cdb: cdb10(OpWrite10, 0, uint32(rng.IntN(64)), 1), dir: DirToDevice, data: make([]byte, 512)}
				kind, decided = "write", false
			case op == 15:
				decided = false
				switch rng.IntN(4) {
				case 0:
					s = shadowStep{n: n, what: "MODE SENSE(6)", cdb: []byte{OpModeSense6, 0, 0x3F, 0, 255, 0}, dir: DirFromDevice, data: make([]byte, 255)}
					kind = "modesense"
				case 1:
					s = shadowStep{n: n, what: "TEST UNIT READY", cdb: []byte{OpTestUnitReady, 0, 0, 0, 0, 0}}
					kind = "tur"
				case 2:
					s = shadowStep{n: n, what: "SYNCHRONIZE CACHE(10)", cdb: cdb10(OpSyncCache10, 0, 0, 0)}
					kind = "synccache"
				case 3:
					s = shadowStep{n: n, what: "INQUIRY", cdb: inquiry(false, 0, 36), dir: DirFromDevice, data: make([]byte, 36)}
					kind = "inquiry"
				}
			case op == 16:
				if rng.IntN(2) == 0 {
					s = shadowStep{n: n, what: "RESERVE(6)", cdb: []byte{OpReserve6, 0, 0, 0, 0, 0}}
					kind = "reserve6"
				} else {
					s = shadowStep{n: n, what: "RELEASE(6)", cdb: []byte{OpRelease6, 0, 0, 0, 0, 0}}
					kind = "release6"
				}
				w = m.uaOr(n, kind, func() want { return m.spc2Cmd(n, kind) })
			case op == 17:
				s = shadowStep{n: n, what: "REQUEST SENSE", cdb: []byte{OpRequestSense, 0, 0, 0, 18, 0}, dir: DirFromDevice, data: make([]byte, 18)}
				kind = "request-sense"
				w = wGood
				sense := make([]byte, 18)
				sense[0], sense[7] = 0x70, 10
				if len(m.ua[n]) > 0 {
					u := m.ua[n][0]
					m.ua[n] = m.ua[n][1:]
					sense[2], sense[12], sense[13] = KeyUnitAttention, u.asc, u.ascq
				}
				w.data = sense
			case op == 18:
				log = append(log, fmt.Sprintf("n%d LUN RESET", n))
				if err := rig.disks[n].Reset(); err != nil {
					fail("reset: %v", err)
				}
				m.spc2 = noNexus
				for i := range m.ua {
					m.ua[i] = []shadowUA{{0x29, 0x03}}
				}
				continue
			default: // the next process (a handover): a new unit from the saved state
				log = append(log, "HANDOVER")
				for _, d := range rig.disks {
					d.Close()
				}
				rig.start()
				m.spc2 = noNexus // SPC-2 reservations live in memory only
				for i := range m.ua {
					m.ua[i] = nil // so do pending unit attentions
				}
				continue
			}
			if !decided { // plain media/info commands
				w = m.uaOr(n, kind, func() want {
					if !m.access(n, kind) {
						return wConflict
					}
					return wGood
				})
			}
			log = append(log, fmt.Sprintf("n%d %s -> want %s", n, s.what, w))
			var res Result
			rig.disks[n].Execute(&Command{CDB: s.cdb, Dir: s.dir, Data: s.data}, &res)
			checkInvariants(t, s.cdb, s.data, &res)
			if res.Status != w.status {
				fail("status %#x (sense % x), want %s", res.Status, res.Sense, w)
			}
			if w.status == StatusCheckCondition {
				if k, a, q := res.Sense[2]&0x0F, res.Sense[12], res.Sense[13]; k != w.key || int(a) != w.asc || int(q) != w.ascq {
					fail("sense %x/%02x/%02x, want %s", k, a, q, w)
				}
			}
			if w.data != nil && !bytes.Equal(s.data[:res.DataLen], w.data) {
				fail("data\n  % x\nwant\n  % x", s.data[:res.DataLen], w.data)
			}
			// The unit's state is what was saved, and matches the model.
			got := rig.unit.State()
			if rig.pr.ok && !reflect.DeepEqual(got, rig.pr.st) {
				fail("saved state %+v, unit state %+v", rig.pr.st, got)
			}
			if got.Generation != m.gen || got.APTPL != m.aptpl || len(got.Registrations) != len(m.order) {
				fail("state %+v; model gen %d aptpl %v regs %v", got, m.gen, m.aptpl, m.key)
			}
		}
	}
	t.Logf("%d sequences x %d steps from %d nexuses", seqs, steps, shadowNexuses)
}

// uaOr: a pending unit attention is reported first (except to the
// commands SAM exempts), and the command is not executed.
func (m *shadow) uaOr(n int, kind string, run func() want) want {
	if kind != "inquiry" && kind != "request-sense" && len(m.ua[n]) > 0 {
		u := m.ua[n][0]
		m.ua[n] = m.ua[n][1:]
		return wCheck(KeyUnitAttention, int(u.asc), int(u.ascq))
	}
	return run()
}

// spc2Cmd is RESERVE(6)/RELEASE(6) in the model (SPC-2, with the CRH
// exceptions of SPC-4 5.13.3).
func (m *shadow) spc2Cmd(n int, kind string) want {
	exempt := m.rtype != 0 && (m.holder == n || (m.rtype >= 5 || m.holder == allNexuses) && m.registered(n))
	if exempt {
		return wGood
	}
	if len(m.key) > 0 || m.rtype != 0 {
		return wConflict
	}
	if kind == "reserve6" {
		if m.spc2 != noNexus && m.spc2 != n {
			return wConflict
		}
		m.spc2 = n
		return wGood
	}
	if m.spc2 == n {
		m.spc2 = noNexus
	}
	return wGood
}

func (w want) String() string {
	switch w.status {
	case StatusGood:
		return "GOOD"
	case StatusReservationConflict:
		return "RESERVATION CONFLICT"
	}
	return fmt.Sprintf("CHECK %x/%02x/%02x", w.key, w.asc, w.ascq)
}
