package datapath

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
)

const guestDom = 7

// testFront plays the guest: it owns the shared ring page, grants data and
// indirect pages through xenfake, and talks to the backend over a fake
// event channel.
type testFront struct {
	t       testing.TB
	grants  *xenfake.Grants
	hub     *xenfake.EventHub
	guest   *xenfake.Guest
	events  *xenfake.EventChannel
	page    []byte
	ringRef uint32
	gport   uint32
	front   *ring.Front
	table   *Table
	rspBuf  []byte
	// pollOnly makes the connection use the poll(2) fallback instead of
	// the netpoller (WaitPending).
	pollOnly bool
	ctx      context.Context
	cancel   context.CancelFunc
}

func newTestFront(t testing.TB) *testFront {
	f := &testFront{t: t, grants: xenfake.NewGrants(), hub: xenfake.NewEventHub(), table: &Table{},
		page: make([]byte, vscsiif.PageSize), rspBuf: make([]byte, vscsiif.ResponseSize)}
	var err error
	if f.front, err = ring.NewFront(f.page, vscsiif.RequestSize); err != nil {
		t.Fatal(err)
	}
	// One deadline for the whole test keeps recv allocation-free (the
	// benchmarks use it too).
	f.ctx, f.cancel = context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(f.cancel)
	f.ringRef = f.grants.Grant(guestDom, f.page, false)
	f.guest = f.hub.Guest(guestDom)
	f.gport = f.guest.AllocUnbound(0)
	if f.events, err = f.hub.Open(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.events.Close() })
	return f
}

func (f *testFront) config(workers int) Config {
	return Config{FrontendDomid: guestDom, RingRef: f.ringRef, RemotePort: f.gport,
		Grants: f.grants, Events: f.events, Resolver: f.table, Workers: workers, pollOnly: f.pollOnly}
}

// start runs a connection with its goroutines; the cleanup checks that Stop
// released the ring mapping and the port.
func (f *testFront) start(workers int) *Conn {
	c, err := Start(f.config(workers))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { f.stop(c) })
	return c
}

func (f *testFront) stop(c *Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.Stop(ctx) //nolint:errcheck // tests that care call Stop themselves first
	if n := f.grants.Mapped(); n != 0 {
		f.t.Errorf("%d grant mappings left after Stop", n)
	}
	if n := f.events.Bound(); n != 0 {
		f.t.Errorf("%d event-channel ports left bound after Stop", n)
	}
}

// dataPage grants a fresh page filled with fill.
func (f *testFront) dataPage(fill byte, readonly bool) ([]byte, uint32) {
	p := make([]byte, vscsiif.PageSize)
	for i := range p {
		p[i] = fill
	}
	return p, f.grants.Grant(guestDom, p, readonly)
}

// send queues requests and notifies the backend if the ring asks for it.
func (f *testFront) send(reqs ...vscsiif.Request) {
	for i := range reqs {
		reqs[i].Encode(f.front.RequestSlot())
		f.front.CommitRequest()
	}
	if f.front.PushRequests() {
		if err := f.guest.Notify(f.gport); err != nil {
			f.t.Fatal(err)
		}
	}
}

// recv waits for n responses (failing after a timeout) and returns them in
// ring order.
func (f *testFront) recv(n int) []vscsiif.Response {
	f.t.Helper()
	var out []vscsiif.Response
	for len(out) < n {
		if f.front.UnconsumedResponses() > 0 {
			f.front.CopyResponse(f.rspBuf)
			var r vscsiif.Response
			vscsiif.DecodeResponse(f.rspBuf, &r)
			out = append(out, r)
			continue
		}
		if f.front.FinalCheckForResponses() {
			continue
		}
		if err := f.guest.Wait(f.ctx, f.gport); err != nil {
			f.t.Fatalf("waiting for response %d of %d: %v", len(out)+1, n, err)
		}
	}
	return out
}

// drainN waits for n responses and only counts them (no allocation: for
// benchmarks).
func (f *testFront) drainN(n int) {
	for got := 0; got < n; {
		if f.front.UnconsumedResponses() > 0 {
			f.front.CopyResponse(f.rspBuf)
			got++
			continue
		}
		if f.front.FinalCheckForResponses() {
			continue
		}
		if err := f.guest.Wait(f.ctx, f.gport); err != nil {
			f.t.Fatalf("waiting for response %d of %d: %v", got+1, n, err)
		}
	}
}

// quiet asserts that no response arrives within d.
func (f *testFront) quiet(d time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if n := f.front.UnconsumedResponses(); n > 0 {
			f.t.Fatalf("%d unexpected responses", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func cdb10(op byte, lba uint32, blocks uint16) [16]byte {
	var c [16]byte
	c[0] = op
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

func rw(rqid uint16, op byte, dir uint8, lba uint32, blocks uint16, segs ...vscsiif.Segment) vscsiif.Request {
	r := vscsiif.Request{Rqid: rqid, Act: vscsiif.ActSCSICDB, CmdLen: 10, CDB: cdb10(op, lba, blocks),
		Direction: dir, NrSegments: uint8(len(segs))}
	copy(r.Seg[:], segs)
	return r
}

const (
	opTUR     = 0x00
	opInquiry = 0x12
	opRead10  = 0x28
	opWrite10 = 0x2a
	blockSize = 512
)

// memLUN is a trivial RAM disk: READ(10), WRITE(10), TEST UNIT READY and a
// 36-byte INQUIRY; anything else is CHECK CONDITION / ILLEGAL REQUEST. The
// real emulation lives in backend/scsi; this one only exercises the data path.
type memLUN struct {
	mu     sync.Mutex
	data   []byte
	closed bool
}

func newMemLUN(blocks int) *memLUN { return &memLUN{data: make([]byte, blocks*blockSize)} }

var illegalRequest = []byte{0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0}

func (l *memLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cdb := cmd.CDB
	switch cdb[0] {
	case opTUR:
	case opInquiry:
		n := copy(cmd.Data, "\x00\x00\x06\x02\x1f\x00\x00\x00govscsi memLUN          0001")
		res.DataLen = min(n, 36)
	case opRead10, opWrite10:
		if len(cdb) < 10 {
			break
		}
		lba := int(binary.BigEndian.Uint32(cdb[2:]))
		n := int(binary.BigEndian.Uint16(cdb[7:])) * blockSize
		if lba*blockSize+n > len(l.data) || n > len(cmd.Data) {
			res.Status, res.Sense = scsi.StatusCheckCondition, illegalRequest
			return
		}
		if cdb[0] == opRead10 {
			res.DataLen = copy(cmd.Data[:n], l.data[lba*blockSize:])
		} else {
			copy(l.data[lba*blockSize:], cmd.Data[:n])
		}
	default:
		res.Status, res.Sense = scsi.StatusCheckCondition, illegalRequest
	}
}

func (l *memLUN) Close() error { l.closed = true; return nil }

// slowLUN blocks every command until released, announcing each start.
type slowLUN struct {
	started chan uint64
	release chan struct{}
	inner   *memLUN
}

func newSlowLUN() *slowLUN {
	return &slowLUN{started: make(chan uint64, 32), release: make(chan struct{}), inner: newMemLUN(64)}
}

func (l *slowLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	l.started <- cmd.Tag
	<-l.release
	l.inner.Execute(cmd, res)
}

func (l *slowLUN) Close() error { return nil }

// nullLUN completes everything at once with GOOD and the full transfer.
type nullLUN struct{}

func (nullLUN) Execute(cmd *scsi.Command, res *scsi.Result) { res.DataLen = len(cmd.Data) }
func (nullLUN) Close() error                                { return nil }

// panicLUN is a buggy LUN.
type panicLUN struct{}

func (panicLUN) Execute(cmd *scsi.Command, res *scsi.Result) { panic("bug") }
func (panicLUN) Close() error                                { return nil }

func seg(ref uint32, off, length uint16) vscsiif.Segment {
	return vscsiif.Segment{Gref: ref, Offset: off, Length: length}
}

func expectRslt(t testing.TB, r vscsiif.Response, rqid uint16, rslt int32) {
	t.Helper()
	if r.Rqid != rqid || r.Rslt != rslt {
		t.Fatalf("response rqid %d rslt %#x, want rqid %d rslt %#x", r.Rqid, r.Rslt, rqid, rslt)
	}
}
