package scsi

import (
	"fmt"
	"slices"
)

// Persistent reservation types (SPC-4 table 164).
const (
	prWriteExclusive       = 1
	prExclusiveAccess      = 3
	prWriteExclusiveRegs   = 5 // Registrants Only
	prExclusiveAccessRegs  = 6
	prWriteExclusiveAll    = 7 // All Registrants
	prExclusiveAccessAll   = 8
	prOutParamListLen      = 24
	prTransportIDLen       = 24 // SAS TransportID
	prFullStatusDescHeader = 24
)

// PERSISTENT RESERVE OUT service actions.
const (
	proRegister       = 0
	proReserve        = 1
	proRelease        = 2
	proClear          = 3
	proPreempt        = 4
	proPreemptAbort   = 5
	proRegisterIgnore = 6
	proRegisterMove   = 7
)

func validPRType(t uint8) bool {
	switch t {
	case prWriteExclusive, prExclusiveAccess, prWriteExclusiveRegs, prExclusiveAccessRegs, prWriteExclusiveAll, prExclusiveAccessAll:
		return true
	}
	return false
}

func allRegistrantsType(t uint8) bool { return t == prWriteExclusiveAll || t == prExclusiveAccessAll }

// registrantsAccess: the Registrants Only and All Registrants types, under
// which every registrant may do everything.
func registrantsAccess(t uint8) bool { return t >= prWriteExclusiveRegs }

// exclusiveAccess: the types that keep non-holders from reading too.
func exclusiveAccess(t uint8) bool {
	return t == prExclusiveAccess || t == prExclusiveAccessRegs || t == prExclusiveAccessAll
}

// Unit attentions of reservation changes (SPC-4 5.13.11).
var (
	uaReservationsPreempted  = senseCheck(KeyUnitAttention, 0x2A, 0x03)
	uaReservationsReleased   = senseCheck(KeyUnitAttention, 0x2A, 0x04)
	uaRegistrationsPreempted = senseCheck(KeyUnitAttention, 0x2A, 0x05)
	invalidRelease           = senseCheck(KeyIllegalRequest, 0x26, 0x04) // INVALID RELEASE OF PERSISTENT RESERVATION
	internalTargetFailure    = senseCheck(KeyHardwareError, 0x44, 0x00)  // the state could not be saved
	reservationConflict      = check{failed: true, conflict: true}       // status RESERVATION CONFLICT, no sense
)

type prReg struct {
	initiator string
	key       uint64
	allTgPt   bool
}

// prState is a logical unit's reservation state. Registrations are per I_T
// nexus, named by the initiator port (there is one target port); the
// reservation, if any, has a type and (except for All Registrants) a
// holder. spc2 is the SPC-2 RESERVE holder (memory only).
type prState struct {
	gen     uint32
	aptpl   bool
	regs    []prReg
	resType uint8
	holder  string
	spc2    string
}

func (s *prState) clone() prState {
	c := *s
	c.regs = slices.Clone(s.regs)
	return c
}

func (s *prState) samePersistent(o *prState) bool {
	return s.gen == o.gen && s.aptpl == o.aptpl && s.resType == o.resType && s.holder == o.holder && slices.Equal(s.regs, o.regs)
}

func (s *prState) find(initiator string) int {
	for i := range s.regs {
		if s.regs[i].initiator == initiator {
			return i
		}
	}
	return -1
}

// isHolder: the nexus holds the reservation (for All Registrants types,
// every registrant does).
func (s *prState) isHolder(initiator string) bool {
	if s.resType == 0 {
		return false
	}
	if allRegistrantsType(s.resType) {
		return s.find(initiator) >= 0
	}
	return s.holder == initiator
}

func (s *prState) release() { s.resType, s.holder = 0, "" }

func (s *prState) export() PRState {
	e := PRState{Generation: s.gen, APTPL: s.aptpl, Registrations: []PRRegistration{}}
	for _, r := range s.regs {
		e.Registrations = append(e.Registrations, PRRegistration{Initiator: r.initiator, Key: r.key, AllTargetPorts: r.allTgPt})
	}
	if s.resType != 0 {
		e.Reservation = &PRReservation{Holder: s.holder, Type: s.resType}
	}
	return e
}

// stateFrom checks a saved state before it is believed.
func stateFrom(e PRState) (prState, error) {
	s := prState{gen: e.Generation, aptpl: e.APTPL}
	for _, r := range e.Registrations {
		if r.Initiator == "" || r.Key == 0 {
			return prState{}, fmt.Errorf("scsi: reservation state: registration %+v: empty initiator or key 0", r)
		}
		if s.find(r.Initiator) >= 0 {
			return prState{}, fmt.Errorf("scsi: reservation state: initiator %q registered twice", r.Initiator)
		}
		s.regs = append(s.regs, prReg{initiator: r.Initiator, key: r.Key, allTgPt: r.AllTargetPorts})
	}
	if r := e.Reservation; r != nil {
		switch {
		case !validPRType(r.Type):
			return prState{}, fmt.Errorf("scsi: reservation state: type %d is not a reservation type", r.Type)
		case allRegistrantsType(r.Type) && (r.Holder != "" || len(s.regs) == 0):
			return prState{}, fmt.Errorf("scsi: reservation state: an all-registrants reservation with holder %q and %d registrants", r.Holder, len(s.regs))
		case !allRegistrantsType(r.Type) && s.find(r.Holder) < 0:
			return prState{}, fmt.Errorf("scsi: reservation state: holder %q is not registered", r.Holder)
		}
		s.resType, s.holder = r.Type, r.Holder
	}
	return s, nil
}

// resvView is the snapshot every command's reservation check reads.
type resvView struct {
	typ        uint8
	holder     string
	registered []string
	spc2       string
}

func (v *resvView) isRegistered(initiator string) bool {
	return slices.Contains(v.registered, initiator)
}

// conflict decides whether a command of class acc from initiator meets a
// reservation held by another nexus (SPC-4 5.13.1 and table 63, SBC-3
// table 13; SPC-2 5.5.1 for RESERVE(6)/(10)).
func (v *resvView) conflict(initiator string, acc access, spc2OK bool) bool {
	if v.spc2 != "" && v.spc2 != initiator {
		return !spc2OK
	}
	if v.typ == 0 || acc == accAlways || acc == accPR || acc == accSPC2 {
		return false
	}
	if registrantsAccess(v.typ) && v.isRegistered(initiator) || !registrantsAccess(v.typ) && v.holder == initiator {
		return false // a holder, or a registrant where registrants have access
	}
	return acc != accRead || exclusiveAccess(v.typ)
}

// prLocked runs f with the unit's reservation state locked (the unit's mu
// is already held exclusively by Execute for PR OUT and RESERVE/RELEASE).
func (d *Disk) prLocked(f func(s *prState) check) check {
	d.lu.prMu.Lock()
	defer d.lu.prMu.Unlock()
	return f(&d.lu.pr)
}

// spcPersistentReserveIn serves PERSISTENT RESERVE IN: READ KEYS, READ
// RESERVATION, REPORT CAPABILITIES, READ FULL STATUS (SPC-4 6.15). Any
// allocation length truncates.
func spcPersistentReserveIn(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	sa := cdb[1] & 0x1F
	if sa > 3 {
		return invalidCDB(1, 4)
	}
	alloc := int(be.Uint16(cdb[7:]))
	var b []byte
	d.prLocked(func(s *prState) check {
		b = be.AppendUint32(make([]byte, 0, 64), s.gen)
		switch sa {
		case 0: // READ KEYS
			b = be.AppendUint32(b, uint32(8*len(s.regs)))
			for _, r := range s.regs {
				b = be.AppendUint64(b, r.key)
			}
		case 1: // READ RESERVATION
			if s.resType == 0 {
				b = be.AppendUint32(b, 0)
				break
			}
			var key uint64
			if !allRegistrantsType(s.resType) {
				key = s.regs[s.find(s.holder)].key
			}
			b = be.AppendUint32(b, 16)
			b = be.AppendUint64(b, key)
			b = append(b, 0, 0, 0, 0, 0, s.resType, 0, 0) // obsolete, reserved, scope LU | type, obsolete
		case 2: // REPORT CAPABILITIES
			b = b[:0]
			ptplA := byte(0)
			if s.aptpl {
				ptplA = 0x01
			}
			b = append(b, 0, 8,
				0x10|0x04|0x01,           // CRH, ATP_C, PTPL_C (no SIP_C: SPEC_I_PT is refused)
				0x80|0x10|ptplA,          // TMV, ALLOW COMMANDS 001b, PTPL_A
				0x80|0x40|0x20|0x08|0x02, // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
				0x01,                     // EX_AC_AR
				0, 0)
		case 3: // READ FULL STATUS
			b = be.AppendUint32(b, uint32(len(s.regs)*(prFullStatusDescHeader+prTransportIDLen)))
			for _, r := range s.regs {
				b = be.AppendUint64(b, r.key)
				b = append(b, 0, 0, 0, 0)
				flags, scopeType := byte(0), byte(0)
				if r.allTgPt {
					flags |= 0x02
				}
				if s.isHolder(r.initiator) {
					flags |= 0x01
					scopeType = s.resType
				}
				b = append(b, flags, scopeType, 0, 0, 0, 0)
				b = be.AppendUint16(b, relativeTargetPort)
				b = be.AppendUint32(b, prTransportIDLen)
				b = append(b, 0x06, 0, 0, 0) // SAS TransportID
				b = be.AppendUint64(b, sasAddress(r.initiator))
				b = append(b, make([]byte, 12)...)
			}
		}
		return good
	})
	dataIn(cmd, res, b, alloc)
	return good
}

// spcPersistentReserveOut serves PERSISTENT RESERVE OUT (SPC-4 5.13.11,
// 6.16): REGISTER, REGISTER AND IGNORE EXISTING KEY, RESERVE, RELEASE,
// CLEAR, PREEMPT, PREEMPT AND ABORT. REGISTER AND MOVE and SPEC_I_PT
// (registering other initiators by TransportID) are not supported. The
// logical unit is held exclusively (Execute): by the time the change is
// made every write already past its reservation check has finished, so
// PREEMPT AND ABORT leaves no write of a preempted nexus behind it, and
// none that comes after it gets through. The new state is saved before it
// takes effect.
func spcPersistentReserveOut(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	sa, scope, typ := cdb[1]&0x1F, cdb[2]>>4, cdb[2]&0x0F
	if sa > proRegisterIgnore {
		return invalidCDB(1, 4) // REGISTER AND MOVE (7) and reserved actions
	}
	plen := int(be.Uint32(cdb[5:]))
	p, c := dataOut(cmd, plen, 5)
	if c.failed {
		return c
	}
	if plen < prOutParamListLen {
		return paramListLenError
	}
	if p[20]&0x08 != 0 {
		c := invalidParam(20)
		c.bitValid, c.bit = true, 3 // SPEC_I_PT: not supported
		return c
	}
	if plen != prOutParamListLen {
		return paramListLenError
	}
	key, saKey := be.Uint64(p[0:]), be.Uint64(p[8:])
	allTgPt, aptpl := p[20]&0x04 != 0, p[20]&0x01 != 0
	switch sa {
	case proReserve, proRelease, proPreempt, proPreemptAbort:
		if scope != 0 {
			return invalidCDB(2, 7) // only LU_SCOPE
		}
		if sa != proRelease && !validPRType(typ) {
			return invalidCDB(2, 3)
		}
	}
	me := d.initiator
	return d.prLocked(func(s *prState) check {
		next := s.clone()
		i := next.find(me)
		if i < 0 && (sa != proRegister && sa != proRegisterIgnore || sa == proRegister && key != 0) {
			return reservationConflict // not registered (or REGISTER with a key it does not have)
		}
		if i >= 0 && sa != proRegisterIgnore && next.regs[i].key != key {
			return reservationConflict
		}
		released := map[string]bool{}  // RESERVATIONS RELEASED
		preempted := map[string]bool{} // REGISTRATIONS PREEMPTED
		cleared := map[string]bool{}   // RESERVATIONS PREEMPTED
		switch sa {
		case proRegister, proRegisterIgnore:
			if i < 0 && saKey == 0 {
				return good // nothing to register, nothing changes
			}
			switch {
			case i < 0:
				next.regs = append(next.regs, prReg{initiator: me, key: saKey, allTgPt: allTgPt})
			case saKey != 0:
				next.regs[i].key = saKey
			default:
				next.unregister(i, released)
			}
			next.gen++
			next.aptpl = aptpl
		case proReserve:
			switch {
			case next.resType == 0:
				next.resType = typ
				if !allRegistrantsType(typ) {
					next.holder = me
				}
			case !next.isHolder(me) || next.resType != typ:
				return reservationConflict
			default:
				return good
			}
		case proRelease:
			if next.resType == 0 || !next.isHolder(me) {
				return good
			}
			if typ != next.resType {
				return invalidRelease
			}
			if next.resType != prWriteExclusive && next.resType != prExclusiveAccess {
				for _, r := range next.regs {
					if r.initiator != me {
						released[r.initiator] = true
					}
				}
			}
			next.release()
		case proClear:
			for _, r := range next.regs {
				if r.initiator != me {
					cleared[r.initiator] = true
				}
			}
			next.regs = nil
			next.release()
			next.gen++
		case proPreempt, proPreemptAbort:
			if c := next.preempt(me, saKey, typ, preempted, released); c.failed {
				return c
			}
			next.gen++
		}
		if err := d.lu.commit(next); err != nil {
			return internalTargetFailure
		}
		d.lu.uaFor(released, uaReservationsReleased)
		d.lu.uaFor(preempted, uaRegistrationsPreempted)
		d.lu.uaFor(cleared, uaReservationsPreempted)
		return good
	})
}

// unregister removes registration i (its own REGISTER with key 0). A
// holder's reservation goes with it, and with it the unit attention
// RESERVATIONS RELEASED for the other registrants if the type was
// Registrants Only; an All Registrants reservation ends with its last
// registrant (SPC-4 5.13.11.2.2).
func (s *prState) unregister(i int, released map[string]bool) {
	me := s.regs[i].initiator
	s.regs = slices.Delete(s.regs, i, i+1)
	switch {
	case s.resType == 0:
	case allRegistrantsType(s.resType):
		if len(s.regs) == 0 {
			s.release()
		}
	case s.holder == me:
		if s.resType == prWriteExclusiveRegs || s.resType == prExclusiveAccessRegs {
			for _, r := range s.regs {
				released[r.initiator] = true
			}
		}
		s.release()
	}
}

// preempt is PREEMPT (and PREEMPT AND ABORT) from registrant me with
// service action key saKey and type typ (SPC-4 5.13.11.4). The issuing
// nexus never loses its own registration.
func (s *prState) preempt(me string, saKey uint64, typ uint8, preempted, released map[string]bool) check {
	remove := func(match func(r prReg) bool) int {
		n := 0
		s.regs = slices.DeleteFunc(s.regs, func(r prReg) bool {
			if !match(r) {
				return false
			}
			n++
			if r.initiator == me {
				return false
			}
			preempted[r.initiator] = true
			return true
		})
		return n
	}
	byKey := func(r prReg) bool { return r.key == saKey }
	switch {
	case s.resType == 0 || allRegistrantsType(s.resType) && saKey != 0:
		// No reservation, or an All Registrants one and a key: remove the
		// registrations of that key; the reservation (if any) stays.
		if saKey == 0 {
			return invalidParam(8)
		}
		if remove(byKey) == 0 {
			return reservationConflict
		}
		if s.resType != 0 && len(s.regs) == 0 {
			s.release()
		}
	case allRegistrantsType(s.resType):
		// SA key 0: every other registrant goes; a new reservation for me.
		remove(func(prReg) bool { return true })
		s.resType, s.holder = typ, ""
		if !allRegistrantsType(typ) {
			s.holder = me
		}
	default:
		if saKey == 0 {
			return invalidParam(8)
		}
		holderKey := s.regs[s.find(s.holder)].key
		if saKey != holderKey {
			if remove(byKey) == 0 {
				return reservationConflict
			}
			break
		}
		old := s.resType
		remove(byKey)
		s.resType, s.holder = typ, ""
		if !allRegistrantsType(typ) {
			s.holder = me
		}
		if old != typ {
			for _, r := range s.regs {
				if r.initiator != me {
					released[r.initiator] = true
				}
			}
		}
	}
	return good
}

// spcReserve serves RESERVE(6)/(10), the SPC-2 reservation, with the CRH
// exceptions of SPC-4 5.13.3: from a persistent reservation holder (or a
// registrant of a Registrants Only or All Registrants reservation) it
// completes GOOD and changes nothing; with any other registration or
// persistent reservation it conflicts; otherwise it reserves the unit for
// this nexus (RESERVE(10)'s obsolete third-party form is taken as a plain
// one, as LIO does; LONGID is refused).
func spcReserve(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	if cdb[0] == OpReserve10 && cdb[1]&0x02 != 0 {
		return invalidCDB(1, 1)
	}
	me := d.initiator
	return d.prLocked(func(s *prState) check {
		switch {
		case s.crhExempt(me):
			return good
		case len(s.regs) > 0 || s.resType != 0:
			return reservationConflict
		case s.spc2 != "" && s.spc2 != me:
			return reservationConflict
		}
		s.spc2 = me
		d.lu.publish()
		return good
	})
}

// spcRelease serves RELEASE(6)/(10): the holder's SPC-2 reservation is
// released; from anyone else it changes nothing (SPC-2 7.17), with the
// same CRH exceptions and conflicts as RESERVE.
func spcRelease(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	if cdb[0] == OpRelease10 && cdb[1]&0x02 != 0 {
		return invalidCDB(1, 1)
	}
	me := d.initiator
	return d.prLocked(func(s *prState) check {
		switch {
		case s.crhExempt(me):
			return good
		case len(s.regs) > 0 || s.resType != 0:
			return reservationConflict
		}
		if s.spc2 == me {
			s.spc2 = ""
			d.lu.publish()
		}
		return good
	})
}

// crhExempt: RESERVE/RELEASE complete GOOD without effect (CRH=1).
func (s *prState) crhExempt(me string) bool {
	return s.resType != 0 && (s.isHolder(me) || registrantsAccess(s.resType) && s.find(me) >= 0)
}
