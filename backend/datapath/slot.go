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
	ops     []xenif.GrantCopyOp // grant-copy batch
	buf     []byte              // data buffer (nil until first needed)
	dataLen int                 // bytes the guest offered
	cmd     scsi.Command
	res     scsi.Result
	panics  bool // the LUN panicked on this command
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

func newSlot(idx, maxSegs int) *slot {
	return &slot{
		idx:     idx,
		segs:    make([]vscsiif.Segment, 0, maxSegs),
		sgl:     make([]byte, maxSegs*vscsiif.SegmentSize),
		ops:     make([]xenif.GrantCopyOp, 0, maxSegs),
		waiters: make([]*slot, 0, 4),
	}
}

// errGrantCopy: a grant-copy op failed (bad ref, wrong domain, read-only
// page...). The request gets DID_ERROR; nothing partial is ever reported.
var errGrantCopy = errors.New("datapath: grant copy failed")

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

// dispatch handles one request copied from the ring (loop goroutine, mu not
// held). Every path ends in exactly one response for this request, now or
// when the LUN finishes.
func (c *Conn) dispatch(s *slot) {
	vscsiif.DecodeRequest(s.raw[:], &s.req)
	r := &s.req
	if err := r.Validate(c.maxSegs); err != nil {
		c.reject(s, vscsiif.HostError, err)
		return
	}
	if r.Act != vscsiif.ActSCSICDB {
		c.tmf(s)
		return
	}
	s.addr = Addr{Channel: r.Channel, Target: r.ID, LUN: r.LUN}
	e, ok := c.resolver.Lookup(s.addr)
	if !ok || e.LUN == nil {
		c.reject(s, vscsiif.HostNoConnect, nil)
		return
	}
	s.entry = e
	dir := dirFromDMA(r.Direction)
	s.dataLen = 0
	s.segs = s.segs[:0]
	if dir != scsi.DirNone {
		if err := c.gatherSegments(s); err != nil {
			c.reject(s, vscsiif.HostError, err)
			return
		}
	}
	s.cmd = scsi.Command{CDB: r.CDB[:r.CmdLen], Dir: dir, Tag: uint64(r.Rqid)}
	if s.dataLen > 0 {
		s.cmd.Data = s.buf[:s.dataLen]
	}
	if dir == scsi.DirToDevice || dir == scsi.DirBidirectional {
		if err := c.copyData(s, s.dataLen, false); err != nil {
			c.reject(s, vscsiif.HostError, err)
			return
		}
	}
	c.mu.Lock()
	s.state = stateRunning
	c.mu.Unlock()
	if e.Inline {
		c.execute(s)
	} else {
		c.work <- s // capacity = number of slots: never blocks
	}
}

// gatherSegments builds the validated data-segment list: the direct seg[]
// entries, or the entries of the indirect pieces, which are grant-copied
// into private memory in one batch and validated only there (P17).
func (c *Conn) gatherSegments(s *slot) error {
	r := &s.req
	n := r.SegCount()
	if !r.Indirect() {
		s.segs = append(s.segs, r.Seg[:n]...)
	} else {
		ops := s.ops[:0]
		pos := 0
		for i := 0; i < n; i++ {
			seg := r.Seg[i]
			ops = append(ops, xenif.GrantCopyOp{Ref: seg.Gref, Domid: c.cfg.FrontendDomid,
				Offset: seg.Offset, Local: s.sgl[pos : pos+int(seg.Length)]})
			pos += int(seg.Length)
		}
		if err := c.grantCopy(ops); err != nil {
			return err
		}
		for off := 0; off < pos; off += vscsiif.SegmentSize {
			seg := vscsiif.DecodeSegment(s.sgl[off:])
			if err := vscsiif.ValidateSegment(seg); err != nil {
				return err
			}
			s.segs = append(s.segs, seg)
		}
	}
	total := 0
	for _, seg := range s.segs {
		total += int(seg.Length)
	}
	if total > len(s.buf) {
		// Grow in big steps up to the maximum transfer, so a slot
		// reallocates at most a few times in its life and a vhost that only
		// sees small commands stays small.
		s.buf = make([]byte, min(max(total, 2*len(s.buf), 64<<10), c.maxSegs*vscsiif.PageSize))
	}
	s.dataLen = total
	return nil
}

// copyData moves the first n bytes of the data buffer to (toGuest) or from
// the guest's segments, in one grant-copy batch.
func (c *Conn) copyData(s *slot, n int, toGuest bool) error {
	ops := s.ops[:0]
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
	if len(ops) == 0 {
		return nil
	}
	return c.grantCopy(ops)
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

// complete copies read data out and answers the command, unless an
// ABORT/RESET/teardown already answered it (then the result is dropped and
// the guest's pages are not touched: it may have reused them).
func (c *Conn) complete(s *slot) {
	res := &s.res
	fromDevice := s.cmd.Dir == scsi.DirFromDevice || s.cmd.Dir == scsi.DirBidirectional
	dl := 0
	if fromDevice && !s.panics && !s.cancelled {
		dl = min(max(res.DataLen, 0), len(s.cmd.Data))
	}
	rslt := vscsiif.Rslt(res.Host, res.Status)
	var sense []byte
	if res.Status == statusCheckCondition {
		sense = res.Sense
	}
	var residual uint32
	if fromDevice {
		residual = uint32(len(s.cmd.Data) - dl)
	}
	if s.panics {
		rslt, sense, residual = vscsiif.Rslt(vscsiif.HostError, 0), nil, 0
	}
	if s.cancelled {
		dl, rslt, sense, residual = 0, vscsiif.Rslt(vscsiif.HostAbort, 0), nil, 0
	}

	if s.entry.Inline && dl > 0 {
		// An inline command cannot be aborted under us: TMFs run on the
		// ring goroutine, which is busy running this command, and Stop
		// waits for that goroutine. Copy out before taking the lock.
		if err := c.copyData(s, dl, true); err != nil {
			c.limiter.log(c.log, "copy read data to guest", err)
			c.counters.Rejected.Add(1)
			rslt, sense, residual = vscsiif.Rslt(vscsiif.HostError, 0), nil, 0
		}
		dl = 0
	}

	c.mu.Lock()
	if s.aborted {
		c.releaseLocked(s)
		c.mu.Unlock()
		return
	}
	if s.tmfHost != 0 {
		// Claimed by ABORT/RESET while in the LUN: the command has now left
		// the task set; answer it (no data to the guest), then its TMFs.
		c.finishLocked(s, vscsiif.Rslt(s.tmfHost, 0), nil, 0)
		return
	}
	if dl == 0 {
		// Nothing to copy out: answer in the same critical section.
		c.finishLocked(s, rslt, sense, residual)
		return
	}
	s.state = stateCompleting
	c.mu.Unlock()

	if err := c.copyData(s, dl, true); err != nil {
		c.limiter.log(c.log, "copy read data to guest", err)
		c.counters.Rejected.Add(1)
		rslt, sense, residual = vscsiif.Rslt(vscsiif.HostError, 0), nil, 0
	}
	c.finish(s, rslt, sense, residual)
}

const statusCheckCondition = 0x02

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
	c.writeResponseLocked(s.req.Rqid, rslt, sense, residual)
	c.answerWaitersLocked(s)
	c.releaseLocked(s)
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
			c.writeResponseLocked(w.req.Rqid, w.tmfRslt, nil, 0)
			c.releaseLocked(w)
		}
	}
	clear(s.waiters)
	s.waiters = s.waiters[:0]
}

func (c *Conn) releaseLocked(s *slot) {
	s.state = stateFree
	s.aborted = false
	s.cancelled = false
	s.started = false
	s.tmfHost = 0
	s.entry = Entry{}
	s.cmd = scsi.Command{}
	s.res = scsi.Result{}
	c.free = append(c.free, s)
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
		c.writeResponseLocked(r.Rqid, s.tmfRslt, nil, 0)
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
		c.writeResponseLocked(s.req.Rqid, s.tmfRslt, nil, 0)
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
		c.writeResponseLocked(v.req.Rqid, vscsiif.Rslt(host, 0), nil, 0)
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
