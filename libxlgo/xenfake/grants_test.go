package xenfake

import (
	"bytes"
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

const guest = 5

func page(fill byte) []byte { return bytes.Repeat([]byte{fill}, PageSize) }

func TestGrantCopyBothWays(t *testing.T) {
	g := NewGrants()
	defer g.Close()
	p := page(0xaa)
	ref := g.Grant(guest, p, false)
	if ref < firstRef {
		t.Fatalf("first ref %d is a reserved ref", ref)
	}
	in := make([]byte, 100)
	ops := []xenif.GrantCopyOp{
		{Ref: ref, Domid: guest, Offset: 4000, ToGuest: true, Local: bytes.Repeat([]byte{1}, 96)},
		{Ref: ref, Domid: guest, Offset: 3990, Local: in},
	}
	if err := g.GrantCopy(ops); err != nil {
		t.Fatal(err)
	}
	for i, op := range ops {
		if op.Status != xenif.GNTSTOkay {
			t.Fatalf("op %d status %d (%s)", i, op.Status, xenif.GrantStatusText(op.Status))
		}
	}
	if !bytes.Equal(p[4000:], bytes.Repeat([]byte{1}, 96)) || p[3999] != 0xaa {
		t.Errorf("ToGuest copy did not land at offset 4000 of the guest page")
	}
	want := append(bytes.Repeat([]byte{0xaa}, 10), bytes.Repeat([]byte{1}, 90)...)
	if !bytes.Equal(in, want) {
		t.Errorf("FromGuest copy read %x, want %x", in, want)
	}
	if g.Copies() != 2 || g.Batches() != 1 {
		t.Errorf("Copies %d Batches %d, want 2 and 1", g.Copies(), g.Batches())
	}
}

// Every failure gets the status Xen's gnttab_copy gives, only the failing
// op fails, and nothing is written to a page it may not write.
func TestGrantCopyStatuses(t *testing.T) {
	g := NewGrants()
	defer g.Close()
	rw := g.Grant(guest, page(0), false)
	ro := g.Grant(guest, page(7), true)
	other := g.Grant(guest+1, page(0), false) // granted by another domain
	gone := g.Grant(guest, page(0), false)
	if err := g.Revoke(gone); err != nil {
		t.Fatal(err)
	}
	buf := func(n int) []byte { return make([]byte, n) }
	cases := []struct {
		name string
		op   xenif.GrantCopyOp
		want int16
	}{
		{"write rw", xenif.GrantCopyOp{Ref: rw, Domid: guest, ToGuest: true, Local: buf(4096)}, xenif.GNTSTOkay},
		{"read ro", xenif.GrantCopyOp{Ref: ro, Domid: guest, Local: buf(10)}, xenif.GNTSTOkay},
		{"write ro", xenif.GrantCopyOp{Ref: ro, Domid: guest, ToGuest: true, Local: buf(10)}, xenif.GNTSTGeneralError},
		{"ref beyond table", xenif.GrantCopyOp{Ref: 1 << 20, Domid: guest, Local: buf(10)}, xenif.GNTSTBadGntref},
		{"reserved ref", xenif.GrantCopyOp{Ref: 0, Domid: guest, Local: buf(10)}, xenif.GNTSTGeneralError},
		{"revoked ref", xenif.GrantCopyOp{Ref: gone, Domid: guest, Local: buf(10)}, xenif.GNTSTGeneralError},
		{"other domain's ref", xenif.GrantCopyOp{Ref: other, Domid: guest, Local: buf(10)}, xenif.GNTSTGeneralError},
		{"unknown domain", xenif.GrantCopyOp{Ref: rw, Domid: 77, Local: buf(10)}, xenif.GNTSTBadDomain},
		{"crosses page end", xenif.GrantCopyOp{Ref: rw, Domid: guest, Offset: 4090, Local: buf(7)}, xenif.GNTSTBadCopyArg},
		{"longer than a page", xenif.GrantCopyOp{Ref: rw, Domid: guest, Local: buf(4097)}, xenif.GNTSTBadCopyArg},
		{"ends at page end", xenif.GrantCopyOp{Ref: rw, Domid: guest, Offset: 4090, Local: buf(6)}, xenif.GNTSTOkay},
		{"empty op is not checked", xenif.GrantCopyOp{Ref: 1 << 20, Domid: 77, Local: nil}, xenif.GNTSTOkay},
	}
	ops := make([]xenif.GrantCopyOp, len(cases))
	for i, c := range cases {
		ops[i] = c.op
		ops[i].Status = 99 // must be overwritten
	}
	if err := g.GrantCopy(ops); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if ops[i].Status != c.want {
			t.Errorf("%s: status %d (%s), want %d (%s)", c.name, ops[i].Status,
				xenif.GrantStatusText(ops[i].Status), c.want, xenif.GrantStatusText(c.want))
		}
	}
	// The refused write to the read-only page left it alone.
	chk := []xenif.GrantCopyOp{{Ref: ro, Domid: guest, Local: buf(PageSize)}}
	g.GrantCopy(chk)
	if !bytes.Equal(chk[0].Local, page(7)) {
		t.Errorf("read-only page was modified")
	}
}

func TestGrantRefReuseAndRevokeErrors(t *testing.T) {
	g := NewGrants()
	defer g.Close()
	a := g.Grant(guest, page(0), false)
	if err := g.Revoke(a); err != nil {
		t.Fatal(err)
	}
	if err := g.Revoke(a); err == nil {
		t.Errorf("double revoke accepted")
	}
	if b := g.Grant(guest, page(0), false); b != a {
		t.Errorf("revoked ref %d not reused (got %d)", a, b)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("Grant of a short page did not panic")
		}
	}()
	g.Grant(guest, make([]byte, 100), false)
}

func TestMapAliasesTheGrantedPage(t *testing.T) {
	g := NewGrants()
	p := page(0)
	ref := g.Grant(guest, p, false)
	m, err := g.MapGrantRefs(guest, []uint32{ref}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != PageSize {
		t.Fatalf("mapping of %d bytes", len(m))
	}
	m[10] = 42 // backend writes the ring...
	p[20] = 43 // ...guest writes it too
	if p[10] != 42 || m[20] != 43 {
		t.Errorf("mapping does not alias the granted page")
	}
	if g.Mapped() != 1 {
		t.Errorf("Mapped = %d, want 1", g.Mapped())
	}
	if err := g.Revoke(ref); err == nil {
		t.Errorf("revoke of a mapped grant accepted")
	}
	if err := g.Unmap(m); err != nil {
		t.Fatal(err)
	}
	if err := g.Unmap(m); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("second unmap: %v, want EINVAL", err)
	}
	if g.Mapped() != 0 {
		t.Errorf("Mapped = %d after unmap", g.Mapped())
	}
	if err := g.Revoke(ref); err != nil {
		t.Errorf("revoke after unmap: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close with nothing mapped: %v", err)
	}
}

func TestMapSeveralRefs(t *testing.T) {
	g := NewGrants()
	defer g.Close()
	buf := make([]byte, 3*PageSize)
	refs := []uint32{
		g.Grant(guest, buf[:PageSize], false),
		g.Grant(guest, buf[PageSize:2*PageSize], false),
		g.Grant(guest, buf[2*PageSize:], false),
	}
	m, err := g.MapGrantRefs(guest, refs, true)
	if err != nil {
		t.Fatal(err)
	}
	m[2*PageSize+5] = 9
	if buf[2*PageSize+5] != 9 {
		t.Errorf("third page not aliased")
	}
	// The same memory mapped twice is two mappings.
	m2, err := g.MapGrantRefs(guest, refs[:1], false)
	if err != nil {
		t.Fatal(err)
	}
	if g.Mapped() != 2 {
		t.Errorf("Mapped = %d, want 2", g.Mapped())
	}
	if err := g.Unmap(m[:PageSize*2]); err == nil {
		t.Errorf("unmap of a partial mapping accepted")
	}
	g.Unmap(m2)
	g.Unmap(m)

	lone := g.Grant(guest, page(0), false)
	if _, err := g.MapGrantRefs(guest, []uint32{refs[0], lone}, true); !errors.Is(err, syscall.ENOTSUP) {
		t.Errorf("non-adjacent pages: %v, want ENOTSUP", err)
	}
	if g.Mapped() != 0 {
		t.Errorf("failed map left %d mappings", g.Mapped())
	}
}

func TestMapErrors(t *testing.T) {
	g := NewGrants()
	defer g.Close()
	ro := g.Grant(guest, page(0), true)
	_, err := g.MapGrantRefs(guest, []uint32{ro}, true)
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("writable map of a read-only grant: %v, want EINVAL", err)
	}
	want := "xenfake gnttab map ref " + itoa(ro) + " of dom 5: invalid argument"
	if err == nil || err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if m, err := g.MapGrantRefs(guest, []uint32{ro}, false); err != nil {
		t.Errorf("read-only map of a read-only grant: %v", err)
	} else {
		g.Unmap(m)
	}
	for _, c := range []struct {
		domid uint32
		refs  []uint32
	}{{guest, nil}, {guest, []uint32{999}}, {guest, []uint32{0}}, {guest + 1, []uint32{ro}}} {
		if _, err := g.MapGrantRefs(c.domid, c.refs, false); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("map %v of dom %d: %v, want EINVAL", c.refs, c.domid, err)
		}
	}
}

func TestCloseReportsLeaksAndFailsLaterOps(t *testing.T) {
	g := NewGrants()
	ref := g.Grant(guest, page(0), false)
	if _, err := g.MapGrantRefs(guest, []uint32{ref}, true); err != nil {
		t.Fatal(err)
	}
	err := g.Close()
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("1 mapping(s)")) {
		t.Errorf("Close with a leaked mapping: %v", err)
	}
	if g.Mapped() != 0 {
		t.Errorf("Mapped = %d after Close", g.Mapped())
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := g.GrantCopy([]xenif.GrantCopyOp{{Ref: ref, Domid: guest, Local: make([]byte, 1)}}); !errors.Is(err, syscall.EBADF) {
		t.Errorf("GrantCopy after Close: %v, want EBADF", err)
	}
	if _, err := g.MapGrantRefs(guest, []uint32{ref}, true); !errors.Is(err, syscall.EBADF) {
		t.Errorf("map after Close: %v, want EBADF", err)
	}
}

func TestGrantCopyDoesNotAllocate(t *testing.T) {
	g := NewGrants()
	defer g.Close()
	ref := g.Grant(guest, page(0), false)
	local := make([]byte, 512)
	ops := make([]xenif.GrantCopyOp, 8)
	for i := range ops {
		ops[i] = xenif.GrantCopyOp{Ref: ref, Domid: guest, Offset: uint16(i * 512), ToGuest: i%2 == 0, Local: local}
	}
	ops[7].Ref = 1 << 20 // failure paths must not allocate either
	ops[6].Domid = 99
	if n := testing.AllocsPerRun(100, func() { g.GrantCopy(ops) }); n != 0 {
		t.Errorf("GrantCopy allocates %.1f times per batch", n)
	}
}

// Guest grants/revokes while the backend copies and maps: run with -race.
func TestGrantsConcurrent(t *testing.T) {
	g := NewGrants()
	defer g.Close()
	stable := g.Grant(guest, page(3), false)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 0; i < 500; i++ {
			r := g.Grant(guest, page(0), i%2 == 0)
			g.Revoke(r)
		}
	}()
	go func() {
		defer wg.Done()
		local := make([]byte, 64)
		ops := []xenif.GrantCopyOp{{Ref: stable, Domid: guest, Local: local}, {Ref: stable + 1, Domid: guest, Local: make([]byte, 64)}}
		for i := 0; i < 500; i++ {
			g.GrantCopy(ops)
			if ops[0].Status != 0 || local[0] != 3 {
				t.Errorf("stable grant copy failed: %d", ops[0].Status)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			m, err := g.MapGrantRefs(guest, []uint32{stable}, false)
			if err != nil {
				t.Error(err)
				return
			}
			g.Unmap(m)
		}
	}()
	wg.Wait()
	if g.Mapped() != 0 {
		t.Errorf("Mapped = %d", g.Mapped())
	}
}

func itoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

func BenchmarkGrantCopy(b *testing.B) {
	g := NewGrants()
	defer g.Close()
	ref := g.Grant(guest, page(0), false)
	local := make([]byte, 512)
	ops := make([]xenif.GrantCopyOp, 8) // one 4 KiB request as 8 sectors
	for i := range ops {
		ops[i] = xenif.GrantCopyOp{Ref: ref, Domid: guest, Offset: uint16(i * 512), Local: local}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(ops) * len(local)))
	for b.Loop() {
		g.GrantCopy(ops)
	}
}

func BenchmarkGrantCopyParallel(b *testing.B) {
	g := NewGrants()
	defer g.Close()
	ref := g.Grant(guest, page(0), false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]byte, 4096)
		ops := []xenif.GrantCopyOp{{Ref: ref, Domid: guest, Local: local}}
		for pb.Next() {
			g.GrantCopy(ops)
		}
	})
}
