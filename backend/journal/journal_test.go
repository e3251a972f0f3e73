package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/govscsi/govscsi/backend/vscsiif"
)

var testID = Identity{Domid: 5, RingRef: 8, Port: 3, Slots: 32, RingSize: 16}

func req(b byte) []byte {
	r := make([]byte, vscsiif.RequestSize)
	for i := range r {
		r[i] = b + byte(i)
	}
	return r
}

func create(t *testing.T, reqCons uint32) (*File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d", "ring.journal")
	f, err := Create(path, testID, reqCons)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

func reopen(t *testing.T, path string, id Identity) Snapshot {
	t.Helper()
	f, s, err := Open(path, id)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return s
}

// TestRoundTrip: what a connection writes through the mapping is what the
// next process reads back, request bytes included.
func TestRoundTrip(t *testing.T) {
	f, path := create(t, 10)
	f.Consumed(3, 10, req(1))
	f.Consumed(7, 11, req(2))
	f.SetReqCons(12)
	f.Answered(7, 10)
	s := reopen(t, path, testID)
	if s.ReqCons != 12 || len(s.Entries) != 2 {
		t.Fatalf("snapshot %+v", s)
	}
	e3, e7 := s.Entries[0], s.Entries[1]
	if e3.Slot != 3 || e3.State != StateConsumed || e3.Index != 10 || string(e3.Request[:]) != string(req(1)) {
		t.Errorf("slot 3: %+v", e3)
	}
	if e7.Slot != 7 || e7.State != StateAnswered || e7.Index != 11 || e7.RspIndex != 10 {
		t.Errorf("slot 7: state %d index %d rsp %d", e7.State, e7.Index, e7.RspIndex)
	}
	f.Free(3)
	f.Free(7)
	if s := reopen(t, path, testID); len(s.Entries) != 0 {
		t.Errorf("freed entries still there: %+v", s.Entries)
	}
	// Remove deletes the file.
	f2, _, err := Open(path, testID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f2.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there after Remove: %v", err)
	}
}

// TestOpenRefusesOtherRingsAndGarbage: a journal of another ring, another
// version or a torn file is never used.
func TestOpenRefusesOtherRingsAndGarbage(t *testing.T) {
	_, path := create(t, 0)
	for _, id := range []Identity{
		{Domid: 6, RingRef: 8, Port: 3, Slots: 32, RingSize: 16},
		{Domid: 5, RingRef: 9, Port: 3, Slots: 32, RingSize: 16},
		{Domid: 5, RingRef: 8, Port: 4, Slots: 32, RingSize: 16},
		{Domid: 5, RingRef: 8, Port: 3, Slots: 64, RingSize: 32},
	} {
		if _, _, err := Open(path, id); !errors.Is(err, ErrMismatch) {
			t.Errorf("Open as %v: %v, want ErrMismatch", id, err)
		}
	}
	raw, _ := os.ReadFile(path)
	for name, mut := range map[string]func([]byte) []byte{
		"short":       func(b []byte) []byte { return b[:100] },
		"truncated":   func(b []byte) []byte { return b[:len(b)-1] },
		"magic":       func(b []byte) []byte { b[0] ^= 1; return b },
		"version":     func(b []byte) []byte { put32(b, offVersion, 2); return b },
		"entry size":  func(b []byte) []byte { put32(b, offEntrySize, 64); return b },
		"bad state":   func(b []byte) []byte { b[headerSize] = 9; return b },
		"tag garbage": func(b []byte) []byte { b[headerSize] = 1; b[headerSize+2] = 1; return b },
		"tag index":   func(b []byte) []byte { b[headerSize] = 1; b[headerSize+4] = 1; return b },
	} {
		b := mut(append([]byte(nil), raw...))
		p := filepath.Join(t.TempDir(), "j")
		os.WriteFile(p, b, 0o600)
		if _, _, err := Open(p, testID); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: Open = %v, want ErrMismatch", name, err)
		}
	}
	if _, _, err := Open(filepath.Join(t.TempDir(), "none"), testID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Create(filepath.Join(t.TempDir(), "j"), Identity{Slots: 0}, 0); err == nil {
		t.Error("Create with 0 slots")
	}
}

// TestRedoCrashPoints walks the orderings of the package doc: for each crash
// point, which requests the next process executes again.
func TestRedoCrashPoints(t *testing.T) {
	type step func(f *File)
	// The old process: requests 100 (slot 0), 101 (slot 1) and 102 (slot 2)
	// consumed in one batch; 101 answered first (at 100), then 100 (at 101);
	// one push; then 102 answered (at 102) but never pushed.
	steps := []struct {
		name string
		do   step
		// after this step, with rsp_prod as published:
		rspProd uint32
		redo    []uint32 // consumed-at indices to execute again, ring order
		cons    uint32   // where the next process consumes
	}{
		{"fresh", func(*File) {}, 100, nil, 100},
		{"entry 100 written, req_cons not", func(f *File) { f.Consumed(0, 100, req(0)) }, 100, nil, 100},
		{"batch written, req_cons not", func(f *File) { f.Consumed(1, 101, req(1)); f.Consumed(2, 102, req(2)) }, 100, nil, 100},
		{"req_cons", func(f *File) { f.SetReqCons(103) }, 100, []uint32{100, 101, 102}, 103},
		{"101 answered at 100", func(f *File) { f.Answered(1, 100) }, 100, []uint32{100, 101, 102}, 103},
		{"100 answered at 101", func(f *File) { f.Answered(0, 101) }, 100, []uint32{100, 101, 102}, 103},
		{"pushed, not freed", func(f *File) {}, 102, []uint32{102}, 103},
		{"freed", func(f *File) { f.Free(0); f.Free(1) }, 102, []uint32{102}, 103},
		{"102 answered, not pushed", func(f *File) { f.Answered(2, 102) }, 102, []uint32{102}, 103},
		{"102 pushed", func(f *File) {}, 103, nil, 103},
	}
	f, path := create(t, 100)
	for _, st := range steps {
		st.do(f)
		s := reopen(t, path, testID)
		redo, err := s.Redo(st.rspProd, 105)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var got []uint32
		for _, e := range redo {
			got = append(got, e.Index)
			if string(e.Request[:]) != string(req(byte(e.Index-100))) {
				t.Errorf("%s: request of %d differs", st.name, e.Index)
			}
		}
		if len(got) != len(st.redo) {
			t.Fatalf("%s: redo %v, want %v", st.name, got, st.redo)
		}
		for i := range got {
			if got[i] != st.redo[i] {
				t.Fatalf("%s: redo %v, want %v", st.name, got, st.redo)
			}
		}
		if s.ReqCons != st.cons {
			t.Errorf("%s: req_cons %d, want %d", st.name, s.ReqCons, st.cons)
		}
	}
}

// TestRedoMismatch: journals that cannot describe the live ring are refused.
func TestRedoMismatch(t *testing.T) {
	f, path := create(t, 0)
	f.Consumed(4, 0, req(0))
	f.Consumed(5, 1, req(1))
	f.SetReqCons(2)
	s := reopen(t, path, testID)
	for _, c := range []struct {
		name             string
		rspProd, reqProd uint32
	}{
		{"frontend re-initialised its ring", 0, 0},
		{"rsp_prod rewritten beyond req_cons", 3, 5},
		{"rsp_prod lowered", 4294967295, 3},
		{"one answer missing from the journal", 1, 3},
		{"req_prod far ahead", 0, 100},
	} {
		if _, err := s.Redo(c.rspProd, c.reqProd); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: Redo(%d, %d) = %v, want ErrMismatch", c.name, c.rspProd, c.reqProd, err)
		}
	}
	if redo, err := s.Redo(0, 2); err != nil || len(redo) != 2 {
		t.Fatalf("the matching ring: %v %v", redo, err)
	}
	// Two slots claiming one ring index, or an answer for a request not
	// consumed yet: a torn or foreign file.
	f.Consumed(6, 1, req(1))
	if _, err := reopen(t, path, testID).Redo(0, 2); !errors.Is(err, ErrMismatch) {
		t.Errorf("duplicate index: %v", err)
	}
	f.Free(6)
	f.Consumed(6, 7, req(1))
	f.Answered(6, 0)
	if _, err := reopen(t, path, testID).Redo(0, 2); !errors.Is(err, ErrMismatch) {
		t.Errorf("answer for a request beyond req_cons: %v", err)
	}
}

// TestRedoIndexWrap: indices wrap at 2^32.
func TestRedoIndexWrap(t *testing.T) {
	f, path := create(t, ^uint32(0)-1)
	f.Consumed(0, ^uint32(0)-1, req(0))
	f.Consumed(1, ^uint32(0), req(1))
	f.Consumed(2, 0, req(2))
	f.SetReqCons(1)
	f.Answered(1, ^uint32(0)-1)
	redo, err := reopen(t, path, testID).Redo(^uint32(0)-1, 3)
	if err != nil || len(redo) != 3 || redo[0].Index != ^uint32(0)-1 || redo[2].Index != 0 {
		t.Fatalf("redo %+v, %v", redo, err)
	}
}
