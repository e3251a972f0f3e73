package datapath

import (
	"errors"
	"fmt"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Batching across the requests of one ring drain (loop goroutine only).
//
// On real Xen every GrantCopy is an ioctl and at least one hypercall, and
// gntdev packs up to 16 ops into each hypercall; so one call per drain
// batch instead of one per request is what keeps dom0 CPU per I/O low at
// queue depth. The CDB requests of a batch are gathered into a group
// (prepare), then the group runs in phases (runGroup), each phase doing one
// GrantCopy for all of its requests (phases 2 to 4 per chunk of at most
// groupChunkBytes of data, to keep it in the cache):
//
//  1. the indirect SG lists of every SG_GRANT request, copied into private
//     memory and only then validated (P17);
//  2. the data of every write (guest -> backend);
//  3. non-inline commands go to the workers, inline ones run on the LUN;
//  4. the read data of every inline command (backend -> guest), then all
//     their responses under one lock. The loop pushes once and notifies
//     at most once per drain batch.
//
// Each request's ops are a contiguous range of the shared op array, so a
// failed op (status != GNTST_okay) fails only its own request (DID_ERROR),
// as when each request did its own copy. If the call fails as a whole, each
// request's range is retried on its own for the same reason.
//
// ABORT and LUN RESET are barriers: the group built so far runs to its end
// (inline commands answered, others handed to workers) before the TMF is
// looked at, so a TMF sees exactly the task set it saw when every request
// was handled one by one. Worker completions keep copying out one request
// at a time: they finish at different times and must not wait for each
// other.

// copyBatch is the shared grant-copy op array of one phase and the slots
// that have ops in it (slot.opLo:opHi).
type copyBatch struct {
	ops   []xenif.GrantCopyOp
	slots []*slot
}

// reserveOps makes room for n more ops, running what is gathered first if
// they would not fit. n never exceeds the capacity (at least maxSegs).
func (c *Conn) reserveOps(n int) {
	if len(c.cb.ops)+n > cap(c.cb.ops) {
		c.runCopies()
	}
}

// addOp appends one op for s; the caller reserved room and brackets its ops
// with beginOps/endOps.
func (c *Conn) addOp(op xenif.GrantCopyOp) {
	c.cb.ops = append(c.cb.ops, op)
}

func (c *Conn) beginOps(s *slot) { s.opLo = len(c.cb.ops) }

func (c *Conn) endOps(s *slot) {
	s.opHi = len(c.cb.ops)
	if s.opHi > s.opLo {
		c.cb.slots = append(c.cb.slots, s)
	}
}

// runCopies performs every gathered op in one GrantCopy call and marks the
// slots with a failed op (copyFailed).
func (c *Conn) runCopies() {
	ops := c.cb.ops
	if len(ops) == 0 {
		return
	}
	if err := c.grants.GrantCopy(ops); err != nil {
		// The call failed as a whole (the device, not an op): give each
		// request its own call so one cannot fail another.
		for _, s := range c.cb.slots {
			if c.grantCopy(ops[s.opLo:s.opHi]) != nil {
				s.copyFailed = true
			}
		}
	} else {
		for _, s := range c.cb.slots {
			for i := s.opLo; i < s.opHi; i++ {
				if ops[i].Status != xenif.GNTSTOkay {
					s.copyFailed = true
					break
				}
			}
		}
	}
	clear(ops) // drop the references to slot buffers
	clear(c.cb.slots)
	c.cb.ops, c.cb.slots = ops[:0], c.cb.slots[:0]
}

// prepare handles one request copied from the ring up to the point where it
// needs grant copies: decode, validate, TMF or address lookup. A CDB request
// for a known LUN joins the group; everything else is answered (or, for a
// TMF, handled after the group ran). Every path ends in exactly one response
// for this request, now or when its command finishes.
func (c *Conn) prepare(s *slot) {
	vscsiif.DecodeRequest(s.raw[:], &s.req)
	r := &s.req
	if err := r.Validate(c.maxSegs); err != nil {
		c.reject(s, vscsiif.HostError, err)
		return
	}
	if r.Act != vscsiif.ActSCSICDB {
		c.runGroup()
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
	s.dataLen = 0
	s.segs = s.segs[:0]
	s.copyFailed = false
	s.cmd = scsi.Command{CDB: r.CDB[:r.CmdLen], Dir: dirFromDMA(r.Direction), Tag: uint64(r.Rqid)}
	c.group = append(c.group, s)
}

// runGroup runs the gathered CDB requests to the point where each one is
// answered (inline) or handed to a worker, with one GrantCopy per phase.
func (c *Conn) runGroup() {
	g := c.group
	if len(g) == 0 {
		return
	}

	// Phase 1: indirect SG lists.
	for _, s := range g {
		if s.cmd.Dir != scsi.DirNone && s.req.Indirect() {
			c.addSGLOps(s)
		}
	}
	c.runCopies()
	kept := g[:0]
	for _, s := range g {
		if s.cmd.Dir != scsi.DirNone {
			if err := c.segmentsReady(s); errors.Is(err, errTooMuchData) {
				c.refuseTooMuchData(s, err)
				continue
			} else if err != nil {
				c.reject(s, vscsiif.HostError, err)
				continue
			}
		}
		kept = append(kept, s)
	}
	g = kept

	// The rest runs in chunks of at most groupChunkBytes of data, so the
	// data a chunk's LUN calls produce is still in the cache when it is
	// copied out (16 4 KiB requests are one chunk; two 512 KiB ones are
	// two, as cheap in calls as when each request copied alone).
	for len(g) > 0 {
		n, bytes := 1, g[0].dataLen
		for n < len(g) && bytes+g[n].dataLen <= groupChunkBytes {
			bytes += g[n].dataLen
			n++
		}
		c.runChunk(g[:n])
		g = g[n:]
	}
	clear(c.group)
	c.group = c.group[:0]
}

// groupChunkBytes bounds the data moved by one chunk of a group.
const groupChunkBytes = 256 << 10

// runChunk runs consecutive requests of a group whose segments are ready:
// one call for their write data, then the LUNs, then one call for the read
// data of the inline ones, and their responses.
func (c *Conn) runChunk(g []*slot) {
	// Phase 2: write data in.
	for _, s := range g {
		if s.cmd.Dir == scsi.DirToDevice || s.cmd.Dir == scsi.DirBidirectional {
			c.addDataOps(s, s.dataLen, false)
		}
	}
	c.runCopies()
	kept := g[:0]
	for _, s := range g {
		if s.copyFailed {
			c.reject(s, vscsiif.HostError, errGrantCopy)
			continue
		}
		kept = append(kept, s)
	}
	g = kept

	// Phase 3: into the LUNs. Workers first, so a slow LUN's commands start
	// while the inline ones run.
	c.mu.Lock()
	for _, s := range g {
		s.state = stateRunning
	}
	c.mu.Unlock()
	inline := g[:0]
	for _, s := range g {
		if s.entry.Inline {
			inline = append(inline, s)
		} else {
			c.work <- s // capacity = number of slots: never blocks
		}
	}
	for _, s := range inline {
		// An inline command cannot be aborted under us: TMFs run on this
		// goroutine after the group, and Stop waits for it.
		s.res = scsi.Result{}
		s.panics = !c.runLUN(s)
		dl, rslt, sense, residual := c.result(s)
		s.rslt, s.sense, s.residual = rslt, s.senseBuf[:copy(s.senseBuf[:], sense)], residual
		if dl > 0 {
			c.addDataOps(s, dl, true)
		}
	}

	// Phase 4: read data out, then every inline response in one critical
	// section (pushed by the loop after the drain batch).
	c.runCopies()
	c.mu.Lock()
	for _, s := range inline {
		if s.copyFailed {
			c.limiter.log(c.log, "copy read data to guest", errGrantCopy)
			c.counters.Rejected.Add(1)
			s.rslt, s.sense, s.residual = vscsiif.Rslt(vscsiif.HostError, 0), nil, 0
		}
		c.answerLocked(s, s.rslt, s.sense, s.residual)
	}
	c.mu.Unlock()
}

// addSGLOps gathers the copy of s's indirect SG pieces into its private SG
// list.
func (c *Conn) addSGLOps(s *slot) {
	r := &s.req
	n := r.SegCount()
	c.reserveOps(n)
	c.beginOps(s)
	pos := 0
	for i := 0; i < n; i++ {
		seg := r.Seg[i]
		end := pos + int(seg.Length)
		if end > len(s.sgl) {
			// Validate bounds the pieces by maxSegs; s.sgl's capacity runs
			// on into the next slot's list, so never rely on the slice
			// bounds check here.
			s.copyFailed = true
			break
		}
		c.addOp(xenif.GrantCopyOp{Ref: seg.Gref, Domid: c.cfg.FrontendDomid,
			Offset: seg.Offset, Local: s.sgl[pos:end]})
		pos = end
	}
	c.endOps(s)
}

// segmentsReady builds the validated data-segment list: the direct seg[]
// entries, or the entries of the indirect pieces copied in phase 1,
// validated only in private memory (P17). It sizes the data buffer.
func (c *Conn) segmentsReady(s *slot) error {
	r := &s.req
	n := r.SegCount()
	if !r.Indirect() {
		s.segs = append(s.segs, r.Seg[:n]...)
	} else {
		if s.copyFailed {
			return errGrantCopy
		}
		end := r.IndirectDataSegs() * vscsiif.SegmentSize
		for off := 0; off < end; off += vscsiif.SegmentSize {
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
	if total > maxDataBytes {
		// More than any LUN takes in one command, so nothing is allocated
		// for it: max_segments may let a guest describe up to 52 MiB.
		return fmt.Errorf("%d bytes, the limit is %d: %w", total, maxDataBytes, errTooMuchData)
	}
	if total > len(s.buf) {
		// Grow in big steps up to the maximum transfer, so a slot
		// reallocates at most a few times in its life and a vhost that only
		// sees small commands stays small.
		s.buf = make([]byte, min(max(total, 2*len(s.buf), 64<<10), maxDataBytes))
	}
	s.dataLen = total
	if total > 0 {
		s.cmd.Data = s.buf[:total]
	}
	return nil
}

// addDataOps gathers the copy of the first n bytes of s's data buffer to
// (toGuest) or from the guest's segments.
func (c *Conn) addDataOps(s *slot, n int, toGuest bool) {
	c.reserveOps(len(s.segs))
	c.beginOps(s)
	c.cb.ops = c.appendDataOps(c.cb.ops, s, n, toGuest)
	c.endOps(s)
}
