package datapath

// The strong cases of issue 14's hostile-input campaign, kept in the suite
// (each a few hundred milliseconds): the datapath held them then, these
// tests hold it to that.

import (
	"context"
	"errors"
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/vscsiif"
)

// TestEventStorm: the guest notifies the backend 200000 times, with no
// request and with a few real ones among the notifies: every real request
// gets its one response, nothing else is written, and the connection
// stops cleanly afterwards.
func TestEventStorm(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			f.table.Set(lun0, Entry{LUN: newMemLUN(64), Inline: inline})
			c := f.start(2)
			_, ref := f.dataPage(0, false)
			const storm = 200000
			sent := 0
			for i := 0; i < storm; i++ {
				if err := f.guest.Notify(f.gport); err != nil {
					t.Fatal(err)
				}
				if i%20000 == 0 {
					f.send(rw(uint16(sent%16), opRead10, vscsiif.DMAFromDevice, 0, 8, seg(ref, 0, 4096)))
					sent++
					expectRslt(t, f.recv(1)[0], uint16((sent-1)%16), rsltGood)
				}
			}
			f.quiet(20 * time.Millisecond)
			if got := c.Stats().Responses.Load(); got != uint64(sent) {
				t.Errorf("%d responses for %d requests", got, sent)
			}
			if err := c.Err(); err != nil {
				t.Errorf("Err after the storm: %v", err)
			}
			t.Logf("%d notifies, %d events taken", storm, c.Stats().Events.Load())
		})
	}
}

// TestStartStopCycles: 200 connections started, used and stopped in a
// row (some stopped with a command in flight), each on a fresh ring as a
// re-probed frontend brings, leak nothing: no grant mapping, no bound
// port, no goroutine.
func TestStartStopCycles(t *testing.T) {
	slow := newSlowLUN()
	close(slow.release) // commands take a scheduling round, not for ever
	go func() {
		for range slow.started {
		}
	}()
	runtime.GC()
	base := runtime.NumGoroutine()
	for i := 0; i < 200; i++ {
		f := newTestFront(t)
		f.table.Set(lun0, Entry{LUN: newMemLUN(64), Inline: true})
		f.table.Set(Addr{0, 1, 0}, Entry{LUN: slow})
		_, ref := f.dataPage(0, false)
		_, ref2 := f.dataPage(0, false)
		c, err := Start(f.config(1 + i%3))
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		f.send(rw(1, opRead10, vscsiif.DMAFromDevice, 0, 8, seg(ref, 0, 4096)))
		expectRslt(t, f.recv(1)[0], 1, rsltGood)
		if i%4 == 0 { // stopped with a command in flight
			r := rw(2, opRead10, vscsiif.DMAFromDevice, 0, 8, seg(ref2, 0, 4096))
			r.ID = 1
			f.send(r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.Stop(ctx)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: Stop: %v", i, err)
		}
		if n := f.grants.Mapped(); n != 0 {
			t.Fatalf("cycle %d: %d grant mappings left", i, n)
		}
		if n := f.events.Bound(); n != 0 {
			t.Fatalf("cycle %d: %d ports left bound", i, n)
		}
		f.events.Close()
		f.cancel()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		t.Errorf("%d goroutines after 200 cycles, %d before", n, base)
	}
}

// TestHostileStreamOneResponsePerRqid: a random stream of good and
// malformed requests, ABORTs and RESETs (rqids chosen by a hostile guest,
// reused only once answered) gets exactly one response per request; a
// response for an rqid not outstanding fails at once (P16).
func TestHostileStreamOneResponsePerRqid(t *testing.T) {
	f := newTestFront(t)
	f.table.Set(lun0, Entry{LUN: newMemLUN(64), Inline: true})
	f.table.Set(Addr{0, 1, 0}, Entry{LUN: newMemLUN(64)})
	c := f.start(2)
	rng := rand.New(rand.NewSource(14))
	// A page per rqid: two reads in flight into one guest page would race
	// in the fake's memory (a real guest's is another domain's).
	var pages [32]uint32
	for i := range pages {
		_, pages[i] = f.dataPage(0, false)
	}
	_, ro := f.dataPage(0, true)
	outstanding := map[uint16]bool{}
	pick := func() uint16 {
		for {
			id := uint16(rng.Intn(32))
			if !outstanding[id] {
				return id
			}
		}
	}
	sent, answered := 0, 0
	for round := 0; round < 300; round++ {
		var batch []vscsiif.Request
		for k := 0; k < 1+rng.Intn(8) && len(outstanding) < 16; k++ {
			id := pick()
			good := pages[id]
			var r vscsiif.Request
			switch rng.Intn(8) {
			case 0: // bad grant
				r = rw(id, opRead10, vscsiif.DMAFromDevice, 0, 8, seg(99999, 0, 4096))
			case 1: // read into a read-only page
				r = rw(id, opRead10, vscsiif.DMAFromDevice, 0, 8, seg(ro, 0, 4096))
			case 2: // segment past the page
				r = rw(id, opWrite10, vscsiif.DMAToDevice, 0, 8, seg(good, 4000, 200))
			case 3: // junk fields
				r = rw(id, opRead10, vscsiif.DMAFromDevice, 0, 8, seg(good, 0, 4096))
				r.Act, r.CmdLen, r.Direction = uint8(rng.Intn(256)), uint8(rng.Intn(32)), uint8(rng.Intn(8))
			case 4: // ABORT of a random rqid
				r = vscsiif.Request{Rqid: id, Act: vscsiif.ActSCSIAbort, RefRqid: uint16(rng.Intn(32))}
			case 5: // LUN RESET
				r = vscsiif.Request{Rqid: id, Act: vscsiif.ActSCSIReset, ID: uint16(rng.Intn(2))}
			default: // good I/O on either LUN
				r = rw(id, opRead10, vscsiif.DMAFromDevice, uint32(rng.Intn(56)), 8, seg(good, 0, 4096))
				r.ID = uint16(rng.Intn(2))
			}
			outstanding[id] = true
			batch = append(batch, r)
		}
		f.send(batch...)
		sent += len(batch)
		for _, rsp := range f.recv(rng.Intn(len(outstanding) + 1)) {
			if !outstanding[rsp.Rqid] {
				t.Fatalf("round %d: response for rqid %d, which is not outstanding", round, rsp.Rqid)
			}
			delete(outstanding, rsp.Rqid)
			answered++
		}
	}
	for _, rsp := range f.recv(len(outstanding)) {
		if !outstanding[rsp.Rqid] {
			t.Fatalf("response for rqid %d, which is not outstanding", rsp.Rqid)
		}
		delete(outstanding, rsp.Rqid)
		answered++
	}
	f.quiet(20 * time.Millisecond)
	if answered != sent {
		t.Errorf("%d responses for %d requests", answered, sent)
	}
	if err := c.Err(); err != nil && !errors.Is(err, ErrRing) {
		t.Errorf("Err: %v", err)
	}
}
