package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

type slotState uint8

const (
	stateFree       slotState = iota
	stateClaimed              // copied from the ring, being decoded on the loop
	stateRunning              // in the LUN (inline or on a worker)
	stateCompleting           // LUN done, copying data out before the response
	stateTMF                  // an ABORT/RESET waiting for victims to answer
)

// slot is one request's private state. Everything is preallocated (the data
// buffer on first use, at full size) so the hot path does not allocate.
type slot struct {
	idx   int
	raw   [vscsiif.RequestSize]byte // the one copy of the ring slot
	req   vscsiif.Request           // decoded from raw
	state slotState
	entry Entry
	addr  Addr

	segs    []vscsiif.Segment   // data segments, validated
	sgl     []byte              // private copy of the indirect SG pieces
	ops     []xenif.GrantCopyOp // a worker's read-data copy-out
	buf     []byte              // data buffer (nil until first needed)
	dataLen int                 // bytes the guest offered

	// In a runGroup phase: this slot's ops are the shared batch's
	// [opLo, opHi), and copyFailed says one of them failed.
	opLo, opHi int
	copyFailed bool
	// An inline command's response, staged until its data is copied out.
	// The sense is copied: the LUN may reuse its buffer for the next
	// command of the group.
	rslt     int32
	sense    []byte
	residual uint32
	senseBuf [vscsiif.SenseBufferSize]byte
	cmd      scsi.Command
	res      scsi.Result
	panics   bool // the LUN panicked on this command
	// cancelled: answered or torn down before a worker picked it up, so
	// the LUN is not called at all.
	cancelled bool

	aborted bool // already answered by ABORT/RESET/teardown; drop the result
	// started: a worker took the command into the LUN (set under mu), so
	// an ABORT/RESET can no longer drop it and must wait for it to return.
	started bool
	// tmfHost: an ABORT/RESET claimed this command while it ran in the LUN;
	// when the LUN returns it is answered with this host byte (its result
	// dropped), then the waiting TMFs (SAM: a TMF completes only once the
	// task has left the task set, so an aborted write can never land after
	// the guest saw the ABORT succeed and re-issued newer data).
	tmfHost uint8
	waiters []*slot // TMFs to answer right after this slot's response
	pending int     // TMF: victims whose responses are still to come
	tmfRslt int32   // TMF: result once pending reaches 0
}

// newSlot makes slot idx; sgl is its part of the connection's SG-list arena.
func newSlot(idx, maxSegs int, sgl []byte) *slot {
	return &slot{
		idx:     idx,
		segs:    make([]vscsiif.Segment, 0, maxSegs),
		sgl:     sgl,
		ops:     make([]xenif.GrantCopyOp, 0, maxSegs),
		waiters: make([]*slot, 0, 4),
	}
}

// resetting: s is a LUN RESET not answered yet (its LUN's Reset may still
// run). Call with mu held.
func (s *slot) resetting() bool {
	return s.state == stateTMF && s.req.Act == vscsiif.ActSCSIReset
}

// errGrantCopy: a grant-copy op failed (bad ref, wrong domain, read-only
// page...). The request gets DID_ERROR; nothing partial is ever reported.
var errGrantCopy = errors.New("datapath: grant copy failed")

// maxDataBytes bounds a request's data, and so a slot's data buffer: no
// LUN takes more than scsi.MaxTransferBytes (512 KiB) in one command (the
// emulated disks refuse it, and pass-through gets no more). max_segments
// only lets a guest describe that with more, smaller segments; without
// this bound its 13312 segments of 4 KiB would make a slot allocate, and
// keep, 52 MiB (docs/backend.md, "Memory per vhost").
const maxDataBytes = scsi.MaxTransferBytes

// errTooMuchData: the segments offer more than maxDataBytes.
var errTooMuchData = errors.New("datapath: request data larger than any LUN accepts")

// refuseTooMuchData answers a request whose segments offer more than
// maxDataBytes as a disk answers a transfer length over its limit: CHECK
// CONDITION, ILLEGAL REQUEST, INVALID FIELD IN CDB (not DID_ERROR, which
// the guest would retry).
func (c *Conn) refuseTooMuchData(s *slot, err error) {
	c.counters.Rejected.Add(1)
	c.limiter.log(c.log, "request offers more data than any LUN accepts", err)
	scsi.SetCheckCondition(&s.res, scsi.KeyIllegalRequest, 0x24, 0x00)
	c.finish(s, vscsiif.Rslt(vscsiif.HostOK, scsi.StatusCheckCondition), s.senseBuf[:copy(s.senseBuf[:], s.res.Sense)], 0)
}

// dirFromDMA maps vscsiif's sc_data_direction (Linux DMA_* numbering) to
// scsi.Direction. The value was validated to be 0..3.
func dirFromDMA(d uint8) scsi.Direction {
	switch d {
	case vscsiif.DMAToDevice:
		return scsi.DirToDevice
	case vscsiif.DMAFromDevice:
		return scsi.DirFromDevice
	case vscsiif.DMABidirectional:
		return scsi.DirBidirectional
	default:
		return scsi.DirNone
	}
}

// copyData moves the first n bytes of the data buffer to (toGuest) or from
// the guest's segments, in one grant-copy batch.
func (c *Conn) copyData(s *slot, n int, toGuest bool) error {
	ops := c.appendDataOps(s.ops[:0], s, n, toGuest)
	if len(ops) == 0 {
		return nil
	}
	return c.grantCopy(ops)
}

// appendDataOps appends to ops the grant copies that move the first n bytes
// of s's data buffer to (toGuest) or from the guest's segments, one op per
// segment (empty segments skipped). Both the per-request and the batched
// paths build their data ops here.
func (c *Conn) appendDataOps(ops []xenif.GrantCopyOp, s *slot, n int, toGuest bool) []xenif.GrantCopyOp {
	pos := 0
	for _, seg := range s.segs {
		if pos >= n {
			break
		}
		l := min(int(seg.Length), n-pos)
		if l == 0 {
			continue
		}
		ops = append(ops, xenif.GrantCopyOp{Ref: seg.Gref, Domid: c.cfg.FrontendDomid,
			Offset: seg.Offset, ToGuest: toGuest, Local: s.buf[pos : pos+l]})
		pos += l
	}
	return ops
}

func (c *Conn) grantCopy(ops []xenif.GrantCopyOp) error {
	if err := c.grants.GrantCopy(ops); err != nil {
		return err
	}
	for i := range ops {
		if ops[i].Status != xenif.GNTSTOkay {
			return errGrantCopy
		}
	}
	return nil
}

// execute runs the command on its LUN and completes it.
func (c *Conn) execute(s *slot) {
	s.res = scsi.Result{}
	s.panics = false
	if !s.cancelled {
		s.panics = !c.runLUN(s)
	}
	c.complete(s)
}

// runLUN calls the LUN; a panic (a bug: LUNs must never panic on guest
// input) becomes DID_ERROR for this command instead of killing the daemon.
func (c *Conn) runLUN(s *slot) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("LUN panicked", "addr", s.addr, "cdb", s.cmd.CDB, "panic", p)
			ok = false
		}
	}()
	s.entry.LUN.Execute(&s.cmd, &s.res)
	return true
}

// result is the response of a command that returned from its LUN (or was
// cancelled before reaching it), and how many bytes of read data go to the
// guest before it.
func (c *Conn) result(s *slot) (dl int, rslt int32, sense []byte, residual uint32) {
	res := &s.res
	fromDevice := s.cmd.Dir == scsi.DirFromDevice || s.cmd.Dir == scsi.DirBidirectional
	if fromDevice && !s.panics && !s.cancelled {
		dl = min(max(res.DataLen, 0), len(s.cmd.Data))
	}
	rslt = vscsiif.Rslt(res.Host, res.Status)
	if res.Status == scsi.StatusCheckCondition {
		sense = res.Sense
	}
	if fromDevice {
		residual = uint32(len(s.cmd.Data) - dl)
	}
	if s.panics {
		rslt, sense, residual = vscsiif.Rslt(vscsiif.HostError, 0), nil, 0
	}
	if s.cancelled {
		dl, rslt, sense, residual = 0, vscsiif.Rslt(vscsiif.HostAbort, 0), nil, 0
	}
	return dl, rslt, sense, residual
}

// complete copies a worker command's read data out and answers it, unless
// an ABORT/RESET/teardown already answered it (then the result is dropped
// and the guest's pages are not touched: it may have reused them). Inline
// commands complete in runGroup instead.
func (c *Conn) complete(s *slot) {
	c.finishing.Add(1)
	dl, rslt, sense, residual := c.result(s)
	c.mu.Lock()
	if s.aborted || s.tmfHost != 0 || dl == 0 {
		// Nothing to copy out (or the result is dropped): answer in the
		// same critical section.
		c.answerLocked(s, rslt, sense, residual)
		c.workerUnlockAndPush()
		return
	}
	s.state = stateCompleting
	c.mu.Unlock()

	if err := c.copyData(s, dl, true); err != nil {
		c.limiter.log(c.log, "copy read data to guest", err)
		c.counters.Rejected.Add(1)
		rslt, sense, residual = vscsiif.Rslt(vscsiif.HostError, 0), nil, 0
	}
	c.mu.Lock()
	c.answerLocked(s, rslt, sense, residual)
	c.workerUnlockAndPush()
}

// workerUnlockAndPush is unlockAndPush for a worker that has just answered
// its command: if other workers' commands have also left their LUNs and are
// about to be answered, the last of them pushes for all (one notify instead
// of one each). The count is taken when a command leaves its LUN, never
// while it runs in it, so a response waits at most for another's copy-out.
func (c *Conn) workerUnlockAndPush() {
	if c.finishing.Add(-1) > 0 {
		c.mu.Unlock()
		return
	}
	c.unlockAndPush()
}

// reject answers a request that never reached a LUN.
func (c *Conn) reject(s *slot, host uint8, err error) {
	c.counters.Rejected.Add(1)
	if err != nil {
		c.limiter.log(c.log, "invalid request from frontend", err)
	}
	c.finish(s, vscsiif.Rslt(host, 0), nil, 0)
}

// finish writes s's response, then those of TMFs that were waiting for it
// (victim first, then the TMF), frees the slot and pushes unless the loop is
// batching.
func (c *Conn) finish(s *slot, rslt int32, sense []byte, residual uint32) {
	c.mu.Lock()
	c.finishLocked(s, rslt, sense, residual)
}

// finishLocked is finish with mu held; it unlocks mu.
func (c *Conn) finishLocked(s *slot, rslt int32, sense []byte, residual uint32) {
	c.answerLocked(s, rslt, sense, residual)
	c.unlockAndPush()
}

// answerLocked writes s's response, then those of TMFs that were waiting for
// it (victim first, then the TMF), and frees the slot. A command already
// answered by ABORT/RESET/teardown only frees its slot; one claimed by
// ABORT/RESET while in its LUN has now left the task set and is answered
// with the TMF's host byte instead of its result (no data went to the
// guest).
func (c *Conn) answerLocked(s *slot, rslt int32, sense []byte, residual uint32) {
	if s.aborted {
		c.releaseLocked(s)
		return
	}
	if s.tmfHost != 0 {
		rslt, sense, residual = vscsiif.Rslt(s.tmfHost, 0), nil, 0
	}
	c.writeResponseLocked(s, rslt, sense, residual)
	c.answerWaitersLocked(s)
	c.releaseLocked(s)
}

// unlockAndPush unlocks mu after responses were written, pushing them (and
// notifying if the frontend asks) unless the loop is batching: then the
// loop pushes once at the end of its drain batch.
func (c *Conn) unlockAndPush() {
	notify := false
	if !c.batching {
		notify = c.pushLocked()
	}
	c.mu.Unlock()
	c.notify(notify)
}

func (c *Conn) answerWaitersLocked(s *slot) {
	for _, w := range s.waiters {
		w.pending--
		if w.pending == 0 {
			c.writeResponseLocked(w, w.tmfRslt, nil, 0)
			c.releaseLocked(w)
		}
	}
	clear(s.waiters)
	s.waiters = s.waiters[:0]
}

// releaseLocked ends s's request. The slot is reused only after the next
// push (recycleLocked): its journal entry must stay until the responses
// written before it are published (package journal: an unpublished
// response never loses its entry to a new request).
func (c *Conn) releaseLocked(s *slot) {
	s.state = stateFree
	s.aborted = false
	s.cancelled = false
	s.started = false
	s.tmfHost = 0
	s.entry = Entry{}
	s.cmd = scsi.Command{}
	s.res = scsi.Result{}
	s.sense = nil
	c.unpushed = append(c.unpushed, s)
}

// recycleLocked returns the slots released before a push to the free list
// and frees their journal entries. Call it right after PushResponses.
func (c *Conn) recycleLocked() {
	if len(c.unpushed) == 0 {
		return
	}
	if c.jnl != nil && !c.ringGone {
		for _, s := range c.unpushed {
			c.jnl.Free(s.idx)
		}
	}
	c.free = append(c.free, c.unpushed...)
	clear(c.unpushed)
	c.unpushed = c.unpushed[:0]
	if c.starved && !c.closed {
		c.starved = false
		c.wake.signal()
	}
}

// tmf handles ABORT and LUN RESET on the loop without blocking it (P22:
// other commands keep flowing). A victim not yet taken by a worker is
// dropped and answered at once (DID_ABORT or DID_RESET). A victim already
// inside the LUN cannot be recalled: it is answered with DID_ABORT/DID_RESET
// only when the LUN returns, and the TMF's response follows it. Answering
// earlier would let the guest re-issue newer data for the same blocks while
// the old write is still running, and the old write could then land last
// (SAM: a TMF completes only once its tasks have left the task set). A
// victim already copying its data out answers normally and the TMF's
// response follows it. LUNs implementing scsi.TaskManagement are told:
// Abort(tag) for an aborted running command (a hint to return early) and
// Reset(), which runs on its own goroutine because a passthrough reset can
// take a while. The TMF response always comes after its victims' responses
// and after Reset returned; a failed Reset (or an unknown address) gives
// 0x2003.
func (c *Conn) tmf(s *slot) {
	r := &s.req
	var abortBuf [4]abortTarget
	aborts := abortBuf[:0]
	var reset scsi.TaskManagement

	c.mu.Lock()
	s.state = stateTMF
	s.pending = 0
	s.tmfRslt = vscsiif.RsltResetSuccess
	switch r.Act {
	case vscsiif.ActSCSIAbort:
		// SAM: aborting a task that no longer exists is FUNCTION COMPLETE.
		for _, v := range c.slots {
			if c.isVictim(s, v) && v.req.Rqid == r.RefRqid {
				if v.state == stateRunning && v.started && v.tmfHost == 0 {
					if tm, ok := v.entry.LUN.(scsi.TaskManagement); ok {
						aborts = append(aborts, abortTarget{tm, v.cmd.Tag})
					}
				}
				c.claimVictimLocked(s, v, vscsiif.HostAbort)
			}
		}
	case vscsiif.ActSCSIReset:
		addr := Addr{Channel: r.Channel, Target: r.ID, LUN: r.LUN}
		s.addr = addr // under mu: WaitIdle waits for a running Reset
		e, ok := c.resolver.Lookup(addr)
		if !ok {
			s.tmfRslt = vscsiif.RsltResetFailed
		} else if tm, ok := e.LUN.(scsi.TaskManagement); ok {
			reset = tm
			s.pending++ // released by runReset
		}
		for _, v := range c.slots {
			if c.isVictim(s, v) && v.addr == addr {
				c.claimVictimLocked(s, v, vscsiif.HostReset)
			}
		}
	}
	if s.pending == 0 {
		c.writeResponseLocked(s, s.tmfRslt, nil, 0)
		c.releaseLocked(s)
	}
	c.mu.Unlock()

	for _, a := range aborts {
		c.callAbort(a)
	}
	if reset != nil {
		go c.runReset(s, reset)
	}
}

type abortTarget struct {
	tm  scsi.TaskManagement
	tag uint64
}

func (c *Conn) callAbort(a abortTarget) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("LUN Abort panicked", "tag", a.tag, "panic", p)
		}
	}()
	a.tm.Abort(a.tag)
}

// runReset resets a LUN off the ring goroutine and then completes the TMF.
func (c *Conn) runReset(s *slot, tm scsi.TaskManagement) {
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("LUN Reset panicked: %v", p)
			}
		}()
		return tm.Reset()
	}()
	c.mu.Lock()
	if err != nil {
		c.limiter.log(c.log, "LUN reset failed", err)
		s.tmfRslt = vscsiif.RsltResetFailed
	}
	s.pending--
	if s.pending == 0 {
		c.writeResponseLocked(s, s.tmfRslt, nil, 0)
		c.releaseLocked(s)
	}
	notify := false
	if !c.batching {
		notify = c.pushLocked()
	}
	c.mu.Unlock()
	c.notify(notify)
}

// isVictim: a command of the task set a TMF must wait for or drop. A
// command already claimed by an earlier TMF is still one (a RESET after an
// ABORT must wait for it too).
func (c *Conn) isVictim(tmf, v *slot) bool {
	return v != tmf && !v.aborted && v.req.Act == vscsiif.ActSCSICDB &&
		(v.state == stateRunning || v.state == stateCompleting)
}

func (c *Conn) claimVictimLocked(tmf, v *slot, host uint8) {
	if v.state == stateRunning && !v.started {
		// Still queued (or being dispatched): it never reaches the LUN.
		v.aborted = true
		c.writeResponseLocked(v, vscsiif.Rslt(host, 0), nil, 0)
		return
	}
	if v.state == stateRunning && v.tmfHost == 0 {
		v.tmfHost = host
	}
	v.waiters = append(v.waiters, tmf)
	tmf.pending++
}

// putResponse encodes a response into a ring slot without staging it.
func putResponse(b []byte, rqid uint16, rslt int32, sense []byte, residual uint32) {
	_ = b[vscsiif.ResponseSize-1]
	le := binary.LittleEndian
	le.PutUint16(b[vscsiif.RspOffRqid:], rqid)
	b[vscsiif.RspOffAct] = 0
	n := min(len(sense), vscsiif.SenseBufferSize)
	b[vscsiif.RspOffSenseLen] = uint8(n)
	copy(b[vscsiif.RspOffSense:], sense[:n])
	clear(b[vscsiif.RspOffSense+n : vscsiif.RspOffRslt])
	le.PutUint32(b[vscsiif.RspOffRslt:], uint32(rslt))
	le.PutUint32(b[vscsiif.RspOffResidual:], residual)
	clear(b[vscsiif.RspOffReserved:vscsiif.ResponseSize])
}
