// Package storetest is one behavioural suite for xenif.Store
// implementations, run against an xsfake server. libxlgo/xs runs it through
// the real libxenstore (cgo), libxlgo/xsfake through its pure-Go client, so
// both are held to the same, xenstored-like, expectations.
package storetest

import (
	"context"
	"errors"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/libxlgo/xsutil"
)

// Opener opens a Store acting as domid against the suite's server. The
// suite closes what it opens.
type Opener func(t *testing.T, srv *xsfake.Started, domid uint32) xenif.Store

// Run runs every scenario, each against a fresh server.
func Run(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, srv *xsfake.Started, open func(domid uint32) xenif.Store)
	}{
		{"ReadWrite", testReadWrite},
		{"Errors", testErrors},
		{"Perms", testPerms},
		{"Watches", testWatches},
		{"WatchPerms", testWatchPerms},
		{"RelativePaths", testRelative},
		{"SpecialWatches", testSpecialWatches},
		{"Transactions", testTransactions},
		{"TransactRetry", testTransactRetry},
		{"ConcurrentTransact", testConcurrentTransact},
		{"BigDirectory", testBigDirectory},
		{"WaitFor", testWaitFor},
		{"CloseTwice", testCloseTwice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := xsfake.StartT(t)
			tc.fn(t, srv, func(domid uint32) xenif.Store {
				s := open(t, srv, domid)
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

// P parses a permission list such as "n0 r5" (panics on a bad literal).
func P(s string) xenif.Perms {
	p, err := xenif.ParsePerms(s)
	if err != nil {
		panic(err)
	}
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err error, want syscall.Errno, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func read(t *testing.T, s xenif.Store, p string) string {
	t.Helper()
	v, err := s.Read(xenif.NoTx, p)
	must(t, err)
	return v
}

// NextEvent waits up to 5 s for one event.
func NextEvent(t *testing.T, s xenif.Store) xenif.WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event within 5 s")
	}
	return xenif.WatchEvent{}
}

func expectEvent(t *testing.T, s xenif.Store, path, token string) {
	t.Helper()
	if ev := NextEvent(t, s); ev.Path != path || ev.Token != token {
		t.Fatalf("event %+v, want {%s %s}", ev, path, token)
	}
}

// expectQuiet checks no event arrives. A round trip to the server first
// makes sure any event caused by earlier requests is already queued.
func expectQuiet(t *testing.T, s xenif.Store) {
	t.Helper()
	s.DomainPath(0)
	select {
	case ev := <-s.Events():
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(150 * time.Millisecond):
	}
}

func testReadWrite(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	s := open(0)
	must(t, s.Write(xenif.NoTx, "/a/b/c", "v 1"))
	if v := read(t, s, "/a/b/c"); v != "v 1" {
		t.Fatalf("read back %q", v)
	}
	// Missing parents were created, empty.
	if v := read(t, s, "/a/b"); v != "" {
		t.Fatalf("implicit parent holds %q", v)
	}
	must(t, s.Write(xenif.NoTx, "/a/b/d", ""))
	must(t, s.Write(xenif.NoTx, "/a/b/bin", "x\x00y\xff"))
	if v := read(t, s, "/a/b/bin"); v != "x\x00y\xff" {
		t.Fatalf("binary value came back as %q", v)
	}
	names, err := s.Directory(xenif.NoTx, "/a/b")
	must(t, err)
	if !reflect.DeepEqual(names, []string{"c", "d", "bin"}) {
		t.Fatalf("directory = %q (want creation order)", names)
	}
	must(t, s.Mkdir(xenif.NoTx, "/a/e/f"))
	must(t, s.Mkdir(xenif.NoTx, "/a/e/f")) // existing: fine
	names, err = s.Directory(xenif.NoTx, "/a/e/f")
	must(t, err)
	if len(names) != 0 {
		t.Fatalf("new directory lists %q", names)
	}
	must(t, s.Rm(xenif.NoTx, "/a/b"))
	if _, err := s.Read(xenif.NoTx, "/a/b/c"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("child of removed node: %v", err)
	}
	p, err := s.DomainPath(7)
	must(t, err)
	if p != "/local/domain/7" {
		t.Fatalf("DomainPath(7) = %q", p)
	}
	if _, ok := srv.Snapshot()["/a/e/f"]; !ok {
		t.Fatalf("server snapshot lacks /a/e/f:\n%s", srv.Dump())
	}
}

func testErrors(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	s := open(0)
	_, err := s.Read(xenif.NoTx, "/local/domain/5/x")
	wantErr(t, err, syscall.ENOENT, "read missing")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ENOENT is not fs.ErrNotExist: %v", err)
	}
	if got := err.Error(); got != "xs read /local/domain/5/x: no such file or directory" {
		t.Fatalf("error text %q", got)
	}
	_, err = s.Directory(xenif.NoTx, "/nope")
	wantErr(t, err, syscall.ENOENT, "directory missing")
	_, err = s.GetPerms(xenif.NoTx, "/nope")
	wantErr(t, err, syscall.ENOENT, "get_perms missing")
	// Removing a missing node is fine when the parent exists, not otherwise.
	must(t, s.Rm(xenif.NoTx, "/nope"))
	wantErr(t, s.Rm(xenif.NoTx, "/nope/deeper"), syscall.ENOENT, "rm without parent")
	for _, bad := range []string{"/a//b", "/a/", "/a b", "/a\\b", "/ä"} {
		wantErr(t, s.Write(xenif.NoTx, bad, "x"), syscall.EINVAL, "write "+strings.ToValidUTF8(bad, "?"))
	}
	wantErr(t, s.Write(xenif.NoTx, "/"+strings.Repeat("x", 2100), "x"), syscall.EINVAL, "over-long path")
	wantErr(t, s.Rm(xenif.NoTx, "/"), syscall.EINVAL, "rm /")
	wantErr(t, s.End(12345, false), syscall.ENOENT, "end unknown transaction")
	_, err = s.Read(12345, "/")
	wantErr(t, err, syscall.ENOENT, "read in unknown transaction")
	wantErr(t, s.Unwatch("/x", "never"), syscall.ENOENT, "unwatch unknown")
	must(t, s.Watch("/x", "dup"))
	expectEvent(t, s, "/x", "dup")
	wantErr(t, s.Watch("/x", "dup"), syscall.EEXIST, "duplicate watch")
	// Payload limit: libxenstore/the client refuse before sending.
	wantErr(t, s.Write(xenif.NoTx, "/big", strings.Repeat("x", 4096)), syscall.E2BIG, "4096-byte value + path")
}

func testPerms(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	d0 := open(0)
	must(t, d0.Mkdir(xenif.NoTx, "/local/domain/5"))
	must(t, d0.SetPerms(xenif.NoTx, "/local/domain/5", P("n0 r5")))
	must(t, d0.Mkdir(xenif.NoTx, "/local/domain/5/data"))
	must(t, d0.SetPerms(xenif.NoTx, "/local/domain/5/data", P("n5")))
	must(t, d0.Write(xenif.NoTx, "/local/domain/5/data/by0", "0"))
	p, err := d0.GetPerms(xenif.NoTx, "/local/domain/5/data/by0")
	must(t, err)
	if p.String() != "n5" {
		t.Fatalf("child created by dom0 has perms %q, want the parent's n5", p)
	}

	d5 := open(5)
	d7 := open(7)
	if v := read(t, d5, "/local/domain/5"); v != "" {
		t.Fatalf("dom5 read its home: %q", v)
	}
	// r5 on the home does not allow creating children in it.
	wantErr(t, d5.Write(xenif.NoTx, "/local/domain/5/x", "1"), syscall.EACCES, "dom5 write under r5 node")
	// The owner may do anything under data/, and owns what it creates.
	must(t, d5.Write(xenif.NoTx, "/local/domain/5/data/sub/y", "5"))
	p, err = d5.GetPerms(xenif.NoTx, "/local/domain/5/data/sub/y")
	must(t, err)
	if p.String() != "n5" {
		t.Fatalf("node created by dom5 has perms %q", p)
	}
	_, err = d5.Read(xenif.NoTx, "/local/domain/5/data/missing")
	wantErr(t, err, syscall.ENOENT, "owner reads missing node")

	// Another domain sees neither the node nor whether it exists.
	_, err = d7.Read(xenif.NoTx, "/local/domain/5/data/sub/y")
	wantErr(t, err, syscall.EACCES, "dom7 reads dom5's node")
	_, err = d7.Read(xenif.NoTx, "/local/domain/5/data/missing")
	wantErr(t, err, syscall.EACCES, "dom7 reads a missing node under dom5's")
	wantErr(t, d7.Write(xenif.NoTx, "/local/domain/5/data/z", "7"), syscall.EACCES, "dom7 writes")
	wantErr(t, d7.Rm(xenif.NoTx, "/local/domain/5/data/sub"), syscall.EACCES, "dom7 rm")
	wantErr(t, d7.SetPerms(xenif.NoTx, "/local/domain/5/data/sub/y", P("b7")), syscall.EACCES, "dom7 set_perms")
	// The owner grants read to dom7; it may not give the node away.
	must(t, d5.SetPerms(xenif.NoTx, "/local/domain/5/data/sub/y", P("n5 r7")))
	if v := read(t, d7, "/local/domain/5/data/sub/y"); v != "5" {
		t.Fatalf("dom7 read %q", v)
	}
	wantErr(t, d7.Write(xenif.NoTx, "/local/domain/5/data/sub/y", "7"), syscall.EACCES, "dom7 writes an r7 node")
	wantErr(t, d5.SetPerms(xenif.NoTx, "/local/domain/5/data/sub/y", P("n7")), syscall.EPERM, "dom5 changes owner")
	// A guest creating a node under a directory it may write (but does not
	// own) becomes the new node's owner; the other entries are inherited.
	must(t, d0.Mkdir(xenif.NoTx, "/shared"))
	must(t, d0.SetPerms(xenif.NoTx, "/shared", P("n0 b5")))
	must(t, d5.Write(xenif.NoTx, "/shared/mine/leaf", "x"))
	for _, n := range []string{"/shared/mine", "/shared/mine/leaf"} {
		p, err := d0.GetPerms(xenif.NoTx, n)
		must(t, err)
		if p.String() != "n5 b5" {
			t.Fatalf("%s created by dom5 under n0 b5 has perms %q, want n5 b5", n, p)
		}
	}
	must(t, d5.SetPerms(xenif.NoTx, "/shared/mine", P("n5 r7")))
	// The default entry: "r0" lets every domain read.
	must(t, d0.Write(xenif.NoTx, "/pub", "hello"))
	must(t, d0.SetPerms(xenif.NoTx, "/pub", P("r0")))
	if v := read(t, d7, "/pub"); v != "hello" {
		t.Fatalf("dom7 read /pub: %q", v)
	}
	// dom0 is never refused.
	if v := read(t, d0, "/local/domain/5/data/sub/y"); v != "5" {
		t.Fatalf("dom0 read %q", v)
	}
	if got := srv.Snapshot()["/local/domain/5/data/sub/y"].Perms.String(); got != "n5 r7" {
		t.Fatalf("server-side perms %q", got)
	}
}

func testWatches(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	s := open(0)
	other := open(0)
	must(t, s.Watch("/w", "t1"))
	expectEvent(t, s, "/w", "t1") // initial firing, even for a missing node
	must(t, other.Write(xenif.NoTx, "/w/x", "1"))
	expectEvent(t, s, "/w/x", "t1")
	must(t, other.Write(xenif.NoTx, "/w/x", "1")) // an unchanged value fires too
	expectEvent(t, s, "/w/x", "t1")
	must(t, other.Write(xenif.NoTx, "/unrelated", "1"))
	must(t, other.Write(xenif.NoTx, "/ww", "1")) // a sibling with a common prefix
	expectQuiet(t, s)

	must(t, other.Write(xenif.NoTx, "/r/a/b", "1"))
	must(t, s.Watch("/r/a/b", "deep"))
	expectEvent(t, s, "/r/a/b", "deep")
	must(t, other.Rm(xenif.NoTx, "/r")) // removal of an ancestor
	expectEvent(t, s, "/r/a/b", "deep")
	expectQuiet(t, s)

	must(t, other.Rm(xenif.NoTx, "/w"))
	expectEvent(t, s, "/w", "t1")
	must(t, s.Unwatch("/w", "t1"))
	must(t, other.Write(xenif.NoTx, "/w/y", "1"))
	expectQuiet(t, s)
}

func testWatchPerms(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	d0 := open(0)
	must(t, d0.Write(xenif.NoTx, "/priv/secret", "s"))
	must(t, d0.SetPerms(xenif.NoTx, "/priv", P("n0")))
	must(t, d0.SetPerms(xenif.NoTx, "/priv/secret", P("n0")))
	d7 := open(7)
	must(t, d7.Watch("/priv", "p"))
	expectEvent(t, d7, "/priv", "p") // the initial firing is unconditional
	must(t, d0.Write(xenif.NoTx, "/priv/secret", "t"))
	expectQuiet(t, d7) // dom7 may read neither the node nor its parent
	must(t, d0.SetPerms(xenif.NoTx, "/priv", P("n0 r7")))
	expectEvent(t, d7, "/priv", "p") // readable now
	must(t, d0.Write(xenif.NoTx, "/priv/secret", "u"))
	expectEvent(t, d7, "/priv/secret", "p") // parent readable: permitted
}

func testRelative(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	d0 := open(0)
	must(t, d0.Mkdir(xenif.NoTx, "/local/domain/5"))
	must(t, d0.SetPerms(xenif.NoTx, "/local/domain/5", P("n5")))
	d5 := open(5)
	must(t, d5.Write(xenif.NoTx, "device/vscsi/0/state", "1"))
	if v := read(t, d0, "/local/domain/5/device/vscsi/0/state"); v != "1" {
		t.Fatalf("relative write landed elsewhere: %q", v)
	}
	must(t, d5.Watch("device", "rel"))
	expectEvent(t, d5, "device", "rel")
	must(t, d0.Write(xenif.NoTx, "/local/domain/5/device/vscsi/0/state", "4"))
	expectEvent(t, d5, "device/vscsi/0/state", "rel")
}

func testSpecialWatches(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	s := open(0)
	must(t, s.Watch(xenif.WatchIntroduceDomain, "intro"))
	expectEvent(t, s, xenif.WatchIntroduceDomain, "intro")
	must(t, s.Watch(xenif.WatchReleaseDomain, "rel"))
	expectEvent(t, s, xenif.WatchReleaseDomain, "rel")
	d3 := open(3)
	must(t, d3.Watch(xenif.WatchReleaseDomain, "guest"))
	expectEvent(t, d3, xenif.WatchReleaseDomain, "guest")

	srv.IntroduceDomain(9)
	expectEvent(t, s, xenif.WatchIntroduceDomain, "intro")
	srv.ReleaseDomain(9)
	expectEvent(t, s, xenif.WatchReleaseDomain, "rel")
	expectQuiet(t, s)
	expectQuiet(t, d3) // special events go to privileged connections only
	// Ordinary writes never fire special watches.
	must(t, s.Write(xenif.NoTx, "/@introduceDomain-lookalike", "x"))
	expectQuiet(t, s)
}

func testTransactions(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	a := open(0)
	b := open(0)
	must(t, a.Write(xenif.NoTx, "/t/x", "0"))
	must(t, b.Watch("/t", "w"))
	expectEvent(t, b, "/t", "w")

	tx, err := a.Begin()
	must(t, err)
	must(t, a.Write(tx, "/t/x", "1"))
	must(t, a.Write(tx, "/t/new/deep", "2"))
	if v, _ := a.Read(tx, "/t/x"); v != "1" {
		t.Fatalf("transaction does not see its own write: %q", v)
	}
	if v := read(t, b, "/t/x"); v != "0" {
		t.Fatalf("uncommitted write visible outside: %q", v)
	}
	expectQuiet(t, b) // no events before commit
	must(t, a.End(tx, false))
	if v := read(t, b, "/t/new/deep"); v != "2" {
		t.Fatalf("committed write missing: %q", v)
	}
	got := map[string]bool{}
	got[NextEvent(t, b).Path] = true
	got[NextEvent(t, b).Path] = true
	if !got["/t/x"] || !got["/t/new/deep"] {
		t.Fatalf("commit events %v", got)
	}

	// Snapshot: a change made meanwhile is not seen, and makes commit fail.
	tx, err = a.Begin()
	must(t, err)
	if v, _ := a.Read(tx, "/t/x"); v != "1" {
		t.Fatalf("tx read %q", v)
	}
	must(t, b.Write(xenif.NoTx, "/t/x", "b"))
	if v, _ := a.Read(tx, "/t/x"); v != "1" {
		t.Fatalf("transaction saw a concurrent change: %q", v)
	}
	must(t, a.Write(tx, "/t/y", "a"))
	err = a.End(tx, false)
	wantErr(t, err, syscall.EAGAIN, "conflicting commit")
	if _, err := b.Read(xenif.NoTx, "/t/y"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("failed commit left /t/y behind: %v", err)
	}
	// Abort discards.
	tx, err = a.Begin()
	must(t, err)
	must(t, a.Write(tx, "/t/aborted", "1"))
	must(t, a.End(tx, true))
	if _, err := b.Read(xenif.NoTx, "/t/aborted"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("aborted write visible: %v", err)
	}
	// Disjoint transactions both commit.
	t1, err := a.Begin()
	must(t, err)
	t2, err := b.Begin()
	must(t, err)
	must(t, a.Write(t1, "/t/x/p", "1"))
	must(t, b.Write(t2, "/t/y2", "1"))
	must(t, a.End(t1, false))
	must(t, b.End(t2, false))
}

func testTransactRetry(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	a := open(0)
	b := open(0)
	must(t, a.Write(xenif.NoTx, "/ctr", "0"))
	attempts := 0
	err := xenif.Transact(a, 5, func(tx xenif.Tx) error {
		attempts++
		v, err := a.Read(tx, "/ctr")
		if err != nil {
			return err
		}
		if attempts == 1 { // someone else bumps the counter under us
			must(t, b.Write(xenif.NoTx, "/ctr", v+"+b"))
		}
		return a.Write(tx, "/ctr", v+"+a")
	})
	must(t, err)
	if attempts != 2 {
		t.Fatalf("Transact made %d attempts, want 2", attempts)
	}
	if v := read(t, b, "/ctr"); v != "0+b+a" {
		t.Fatalf("counter %q", v)
	}
	// Always conflicting: gives up after max attempts with EAGAIN.
	attempts = 0
	err = xenif.Transact(a, 3, func(tx xenif.Tx) error {
		attempts++
		if _, err := a.Read(tx, "/ctr"); err != nil {
			return err
		}
		must(t, b.Write(xenif.NoTx, "/ctr", "x"))
		return a.Write(tx, "/ctr", "a")
	})
	if attempts != 3 || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("Transact: %d attempts, err %v", attempts, err)
	}
	// fn's own error aborts.
	boom := errors.New("boom")
	if err := xenif.Transact(a, 3, func(tx xenif.Tx) error {
		must(t, a.Write(tx, "/never", "1"))
		return boom
	}); err != boom {
		t.Fatalf("Transact returned %v", err)
	}
	if _, err := a.Read(xenif.NoTx, "/never"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("aborted Transact left data: %v", err)
	}
}

// Several connections (and goroutines sharing one) increment one counter
// in transactions: conflicts happen for real and Transact's retries must
// lose no increment.
func testConcurrentTransact(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	shared := open(0)
	must(t, shared.Write(xenif.NoTx, "/counter", "0"))
	stores := []xenif.Store{shared, shared, open(0), open(0)}
	const per = 25
	errs := make(chan error, len(stores))
	for _, s := range stores {
		go func(s xenif.Store) {
			for i := 0; i < per; i++ {
				err := xenif.Transact(s, 1000, func(tx xenif.Tx) error {
					v, err := s.Read(tx, "/counter")
					if err != nil {
						return err
					}
					n, err := strconv.Atoi(v)
					if err != nil {
						return err
					}
					return s.Write(tx, "/counter", strconv.Itoa(n+1))
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(s)
	}
	for range stores {
		must(t, <-errs)
	}
	if v := read(t, shared, "/counter"); v != strconv.Itoa(per*len(stores)) {
		t.Fatalf("counter %s after %d increments", v, per*len(stores))
	}
}

func testBigDirectory(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	// More than 4096 bytes of names: XS_DIRECTORY gets E2BIG and the
	// client switches to XS_DIRECTORY_PART.
	s := open(0)
	var want []string
	err := xenif.Transact(s, 3, func(tx xenif.Tx) error {
		want = want[:0]
		for i := 0; i < 400; i++ {
			n := "entry-number-" + strings.Repeat("0", 3) + itoa(i)
			want = append(want, n)
			if err := s.Write(tx, "/big/"+n, ""); err != nil {
				return err
			}
		}
		return nil
	})
	must(t, err)
	got, err := s.Directory(xenif.NoTx, "/big")
	must(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("directory of %d entries came back with %d", len(want), len(got))
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func testWaitFor(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	s := open(0)
	w := open(0)
	m := xsutil.NewMux(s)
	defer m.Close()
	go func() {
		time.Sleep(50 * time.Millisecond)
		w.Write(xenif.NoTx, "/be/state", "2")
		time.Sleep(20 * time.Millisecond)
		w.Write(xenif.NoTx, "/be/state", "4")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := xsutil.WaitFor(ctx, m, "/be/state", xsutil.Equals("4"))
	must(t, err)
	if v != "4" {
		t.Fatalf("WaitFor returned %q", v)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = xsutil.WaitFor(ctx2, m, "/be/state", xsutil.Equals("6"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `last value "4"`) {
		t.Fatalf("WaitFor timeout: %v", err)
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		w.Rm(xenif.NoTx, "/be")
	}()
	_, err = xsutil.WaitFor(ctx, m, "/be/state", xsutil.Gone)
	must(t, err)
}

func testCloseTwice(t *testing.T, srv *xsfake.Started, open func(uint32) xenif.Store) {
	s := open(0)
	must(t, s.Watch("/c", "c"))
	expectEvent(t, s, "/c", "c")
	must(t, s.Close())
	must(t, s.Close())
	if _, ok := <-s.Events(); ok {
		t.Fatal("Events still open after Close")
	}
	if _, err := s.Read(xenif.NoTx, "/c"); !errors.Is(err, xenif.ErrStoreClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := s.Watch("/c", "d"); !errors.Is(err, xenif.ErrStoreClosed) {
		t.Fatalf("Watch after Close: %v", err)
	}
}
