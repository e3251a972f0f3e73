package xsfake

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xswire"
)

// discardRW is a connection whose replies go nowhere (for driving handle
// directly, without goroutines).
type discardRW struct{}

func (discardRW) Read([]byte) (int, error)    { return 0, io.EOF }
func (discardRW) Write(p []byte) (int, error) { return len(p), nil }
func (discardRW) Close() error                { return nil }

// checkTree verifies the tree's structural invariants: every listed child
// exists, every node but the root is listed by its parent, every node has
// an owner entry.
func checkTree(t *testing.T, s *Server) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes["/"] == nil {
		t.Fatal("root node lost")
	}
	for p, n := range s.nodes {
		if len(n.perms) == 0 {
			t.Fatalf("%s has no permissions", p)
		}
		for _, c := range n.children {
			cp := p + "/" + c
			if p == "/" {
				cp = "/" + c
			}
			if s.nodes[cp] == nil {
				t.Fatalf("%s lists missing child %q", p, c)
			}
		}
		if p == "/" {
			continue
		}
		found := false
		for _, c := range s.nodes[parentOf(p)].children {
			found = found || c == baseName(p)
		}
		if !found {
			t.Fatalf("%s is not listed by its parent", p)
		}
	}
}

func newTestConn(s *Server, domid uint32) *conn {
	c := &conn{s: s, domid: domid, rw: discardRW{}, txs: map[uint32]*tx{}}
	c.qcond = sync.NewCond(&c.qmu)
	c.qdone = true // drop output
	s.conns[c] = struct{}{}
	return c
}

// FuzzServer feeds arbitrary request streams, as dom0 and as a guest, to
// the request handler: it must never panic, and the tree must stay
// consistent whatever a hostile client sends.
func FuzzServer(f *testing.F) {
	msg := func(op xswire.Op, tx uint32, payload string) []byte {
		b, _ := xswire.Msg{Header: xswire.Header{Type: op, TxID: tx}, Payload: []byte(payload)}.Encode()
		return b
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	f.Add(cat(msg(xswire.Write, 0, "/a/b\x00v"), msg(xswire.Read, 0, "/a/b\x00")), false)
	f.Add(cat(msg(xswire.TransactionStart, 0, "\x00"), msg(xswire.Write, 1, "/t/x\x001"),
		msg(xswire.Rm, 1, "/t\x00"), msg(xswire.TransactionEnd, 1, "T\x00")), false)
	f.Add(cat(msg(xswire.Write, 0, "x\x00guest"), msg(xswire.SetPerms, 0, "x\x00b5\x00r0\x00"),
		msg(xswire.Watch, 0, "x\x00tok\x00"), msg(xswire.DirectoryPart, 0, "/\x000\x00")), true)
	f.Add(cat(msg(xswire.Introduce, 0, "5\x000\x000\x00"), msg(xswire.Release, 0, "5\x00"),
		msg(xswire.Control, 0, "check\x00"), msg(xswire.Op(99), 0, "")), false)
	f.Add(cat(msg(xswire.Mkdir, 0, "/local/domain/5\x00"), msg(xswire.Rm, 0, "/\x00"),
		msg(xswire.GetPerms, 7, "/\x00"), msg(xswire.SetPerms, 0, "/\x00q7\x00")), true)
	f.Fuzz(func(t *testing.T, data []byte, guest bool) {
		s := New()
		var domid uint32
		if guest {
			domid = 5
		}
		c := newTestConn(s, domid)
		other := newTestConn(s, 0)
		s.handle(other, xswire.Msg{Header: xswire.Header{Type: xswire.Watch}, Payload: xswire.Strings("/", "all")})
		r := bytes.NewReader(data)
		for i := 0; i < 64; i++ {
			m, err := xswire.ReadMsg(r)
			if err != nil {
				break
			}
			s.handle(c, m)
		}
		checkTree(t, s)
	})
}

// A client announcing more than 4096 bytes is disconnected; the server and
// its other clients carry on.
func TestHostileLengthDisconnects(t *testing.T) {
	srv, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	good, err := Dial(srv.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	bad, err := net.Dial("unix", srv.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	bad.Write(xswire.AppendHeader(nil, xswire.Header{Type: xswire.Write, Len: 0xffffffff}))
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := bad.Read(make([]byte, 16)); err == nil {
		t.Fatalf("hostile client got %d bytes back instead of a hang-up", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("hostile client was not disconnected")
	}
	// Truncated message then EOF: dropped too.
	bad2, err := net.Dial("unix", srv.Socket)
	if err != nil {
		t.Fatal(err)
	}
	bad2.Write(xswire.AppendHeader(nil, xswire.Header{Type: xswire.Read, Len: 100})[:10])
	bad2.Close()
	if err := good.Write(0, "/still", "alive"); err != nil {
		t.Fatalf("server unusable after hostile clients: %v", err)
	}
	// Malformed but well-framed requests get xenstored's error replies.
	for _, tc := range []struct {
		op      xswire.Op
		payload string
		want    string
	}{
		{xswire.Read, "/no-nul", "EINVAL"},
		{xswire.Read, "/a\x00/b\x00", "EINVAL"},
		{xswire.Write, "/no-nul-at-all", "EINVAL"},
		{xswire.Op(20), "", "ENOSYS"},
		{xswire.Op(1000), "", "ENOSYS"},
		{xswire.WatchEvent, "a\x00b\x00", "ENOSYS"},
		{xswire.TransactionEnd, "X\x00", "EINVAL"},
		{xswire.GetDomainPath, "five\x00", "EINVAL"},
		{xswire.SetPerms, "/still\x00x1\x00", "EINVAL"},
	} {
		_, err := good.Raw(tc.op, 0, []byte(tc.payload))
		if err == nil || !strings.Contains(err.Error(), strings.ToLower(errText(tc.want))) {
			t.Errorf("%v %q: err %v, want %s", tc.op, tc.payload, err, tc.want)
		}
	}
}

func errText(name string) string {
	switch name {
	case "EINVAL":
		return "invalid argument"
	case "ENOSYS":
		return "function not implemented"
	}
	return name
}
