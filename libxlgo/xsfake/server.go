// Package xsfake is a xenstore server for tests, written in Go. It speaks
// the real wire protocol (libxlgo/xswire) on Unix sockets, so Debian's
// libxenstore (with XENSTORED_PATH=<socket>) and the xenstore-* tools talk to
// it as they would to xenstored (Xen 4.17), and it implements the parts of
// xenstored's semantics govscsi depends on:
//
//   - nodes with an owner and per-domain n/r/w/b permissions (perm_for_conn:
//     dom0 and the owner have full access, then the domain's own entry,
//     else the first entry's bits as the default); children inherit the
//     parent's permissions at creation and an unprivileged creator becomes
//     the owner; a missing node reads as EACCES rather than ENOENT when the
//     nearest existing ancestor grants none of the wanted access
//     (errno_from_parents); set-perms needs ownership and a guest may not
//     give a node away (EPERM);
//   - implicit creation of missing parents on write and mkdir; rm of a
//     missing node succeeds if its parent exists;
//   - connections acting as a given domain: every listener (Listen,
//     Started.ListenDomain) and in-process connection (Connect) is bound to
//     a domid; relative paths resolve against /local/domain/<domid>;
//   - watches: fired once on registration (unconditionally), then on a
//     change of the node or a descendant (event path = changed node), and
//     on removal of the node or an ancestor (descendants fire only watches
//     set exactly on them), to connections that may read the node or its
//     parent (watch_permitted, XSA-115); relative watches get relative
//     event paths; special watches @introduceDomain/@releaseDomain fire on
//     IntroduceDomain/ReleaseDomain or XS_INTRODUCE/XS_RELEASE and are seen
//     by dom0 connections only;
//   - transactions with snapshot semantics: reads see the store as it was
//     at XS_TRANSACTION_START plus the transaction's own writes; the commit
//     fails with EAGAIN, changing nothing, if any node the transaction read
//     or wrote (including parents whose child lists it changed) was changed
//     meanwhile; events fire at commit;
//   - XS_GET_DOMAIN_PATH, XS_INTRODUCE/RELEASE/RESUME (dom0 only),
//     XS_IS_DOMAIN_INTRODUCED (dom0 only since XSA-115), XS_SET_TARGET
//     (accepted, not modelled), XS_RESET_WATCHES, XS_DIRECTORY (E2BIG past
//     4096 bytes) and XS_DIRECTORY_PART, XS_CONTROL "check"/"help";
//   - error replies as xenstored sends them ("ENOENT\0", xs_wire.h's
//     names); unknown operations get ENOSYS; a client announcing a payload
//     over 4096 bytes, or sending a truncated message, is disconnected.
//
// Not modelled: quotas and per-domain limits, XS_SET_TARGET semantics,
// permissions on the special watch nodes, removing a released domain's
// connections, live update.
//
// Test helpers: Start/StartT (a dom0 socket in a fresh temp dir; StartT also
// sets XENSTORED_PATH for the test), Connect (pure-Go client, no cgo),
// Snapshot, Dump (byte-identical to `xenstore-ls -f -p /`), Conns,
// SetLog, SetOnRequest. The command cmd/fake-xenstored and
// scripts/fake-xenstored.sh run it for shell tests.
package xsfake

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xswire"
)

// Server is an in-memory xenstore. The zero value is not usable: call New.
type Server struct {
	mu         sync.Mutex
	nodes      map[string]*node
	gen        uint64
	conns      map[*conn]struct{}
	nextTx     uint32
	introduced map[uint32]bool
	listeners  []net.Listener
	closed     bool
	wg         sync.WaitGroup
	log        func(format string, args ...any)
	onRequest  func(domid uint32, m xswire.Msg)
}

// SetLog installs f to receive one line per request (for debugging tests).
// f runs with the server locked: it must not call back into s.
func (s *Server) SetLog(f func(format string, args ...any)) {
	s.mu.Lock()
	s.log = f
	s.mu.Unlock()
}

// SetOnRequest installs f to run before each request is handled, without
// the server lock, so a test may change the store at an exact point of a
// client's conversation (for example between a transaction's write and its
// commit).
func (s *Server) SetOnRequest(f func(domid uint32, m xswire.Msg)) {
	s.mu.Lock()
	s.onRequest = f
	s.mu.Unlock()
}

// New returns a server holding only the root node "/" (perms "n0"), with
// domain 0 introduced.
func New() *Server {
	s := &Server{
		nodes:      map[string]*node{},
		conns:      map[*conn]struct{}{},
		introduced: map[uint32]bool{0: true},
	}
	s.gen = 1
	s.nodes["/"] = &node{perms: xenif.Perms{{Domid: 0, Bits: xenif.PermNone}}, gen: 1}
	return s
}

// Listen serves connections on a new Unix socket at path; every connection
// made there acts as domain domid (0 = dom0, privileged). Point
// XENSTORED_PATH at a domid-0 socket for libxenstore and xenstore-*.
func (s *Server) Listen(path string, domid uint32) error {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("xsfake: listen %s: %w", path, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return errors.New("xsfake: server closed")
	}
	s.listeners = append(s.listeners, l)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			if !s.serve(nc, domid) {
				nc.Close()
			}
		}
	}()
	return nil
}

// Connect returns an in-process client acting as domid, talking the wire
// protocol to s over a pipe. Close it when done.
func (s *Server) Connect(domid uint32) (*Client, error) {
	a, b := net.Pipe()
	if !s.serve(b, domid) {
		a.Close()
		b.Close()
		return nil, errors.New("xsfake: server closed")
	}
	return NewClient(a), nil
}

// Close stops the listeners, drops every connection and waits for the
// server's goroutines to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := s.listeners
	s.listeners = nil
	var cs []*conn
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.shutdown()
	}
	s.wg.Wait()
	return nil
}

// IntroduceDomain marks domid as introduced and fires @introduceDomain, as
// XS_INTRODUCE does.
func (s *Server) IntroduceDomain(domid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.introduced[domid] {
		s.introduced[domid] = true
		s.fireLocked([]fire{{name: xenif.WatchIntroduceDomain}})
	}
}

// ReleaseDomain marks domid as gone and fires @releaseDomain, as XS_RELEASE
// (or the death of a domain) does.
func (s *Server) ReleaseDomain(domid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.introduced[domid] {
		delete(s.introduced, domid)
		s.fireLocked([]fire{{name: xenif.WatchReleaseDomain}})
	}
}

// Node is one node of a Snapshot.
type Node struct {
	Value string
	Perms xenif.Perms
}

// Snapshot returns a copy of every node, keyed by absolute path.
func (s *Server) Snapshot() map[string]Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]Node, len(s.nodes))
	for p, n := range s.nodes {
		m[p] = Node{Value: string(n.value), Perms: append(xenif.Perms(nil), n.perms...)}
	}
	return m
}

// Dump lists the tree depth-first in child order, one node a line, exactly
// as `xenstore-ls -f -p /` prints it: `/path = "value"   (n0,r5)`, values
// escaped as xenstore-ls does (sanitise).
func (s *Server) Dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sb strings.Builder
	var walk func(p string)
	walk = func(p string) {
		n := s.nodes[p]
		if n == nil {
			return
		}
		if p != "/" {
			ps := strings.ReplaceAll(n.perms.String(), " ", ",")
			fmt.Fprintf(&sb, "%s = \"%s\"   (%s)\n", p, sanitise(n.value), ps)
		}
		for _, c := range n.children {
			if p == "/" {
				walk("/" + c)
			} else {
				walk(p + "/" + c)
			}
		}
	}
	walk("/")
	return sb.String()
}

// sanitise escapes a value as xenstore-ls prints it: printable ASCII as is
// (except backslash), \t \n \r \\, bytes below 8 as \ooo octal and the
// rest as \xhh (checked against Debian's xenstore-ls in tests/xenstore).
func sanitise(v []byte) string {
	var sb strings.Builder
	for _, c := range v {
		switch {
		case c == '\\':
			sb.WriteString(`\\`)
		case c >= ' ' && c <= '~':
			sb.WriteByte(c)
		case c == '\t':
			sb.WriteString(`\t`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\r':
			sb.WriteString(`\r`)
		case c < 8:
			fmt.Fprintf(&sb, "\\%03o", c)
		default:
			fmt.Fprintf(&sb, "\\x%02x", c)
		}
	}
	return sb.String()
}

// Conns returns how many connections are open (for leak checks).
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ---- connections ----

type watch struct {
	node     string // canonical path or special "@..."
	token    string
	relative string // domain prefix to strip from event paths, or ""
}

type tx struct {
	id    uint32
	base  map[string]*node // the live tree as it was at start
	v     *view
	owner *conn
}

type conn struct {
	s       *Server
	domid   uint32
	rw      io.ReadWriteCloser
	watches []*watch
	txs     map[uint32]*tx

	qmu    sync.Mutex
	qcond  *sync.Cond
	queue  [][]byte
	qdone  bool
	closer sync.Once
}

func (s *Server) serve(rw io.ReadWriteCloser, domid uint32) bool {
	c := &conn{s: s, domid: domid, rw: rw, txs: map[uint32]*tx{}}
	c.qcond = sync.NewCond(&c.qmu)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	go c.readLoop()
	go c.writeLoop()
	return true
}

// send queues a message for the connection's writer; it never blocks, so
// a client that stops reading cannot stall the server.
func (c *conn) send(m xswire.Msg) {
	b, err := m.Encode()
	if err != nil {
		b, _ = xswire.ErrorMsg(m.Header, syscall.E2BIG).Encode()
	}
	c.qmu.Lock()
	if !c.qdone {
		c.queue = append(c.queue, b)
		c.qcond.Signal()
	}
	c.qmu.Unlock()
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	for {
		c.qmu.Lock()
		for len(c.queue) == 0 && !c.qdone {
			c.qcond.Wait()
		}
		if c.qdone {
			c.qmu.Unlock()
			return
		}
		b := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.qmu.Unlock()
		if _, err := c.rw.Write(b); err != nil {
			c.shutdown()
			return
		}
	}
}

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer c.shutdown()
	for {
		m, err := xswire.ReadMsg(c.rw)
		if err != nil {
			// EOF, a broken stream, or a hostile length: xenstored drops
			// the connection in each case.
			return
		}
		c.s.handle(c, m)
	}
}

// shutdown closes the connection and forgets its watches and transactions.
func (c *conn) shutdown() {
	c.closer.Do(func() {
		c.rw.Close()
		c.qmu.Lock()
		c.qdone = true
		c.qcond.Broadcast()
		c.qmu.Unlock()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.watches = nil
		c.txs = nil
		c.s.mu.Unlock()
	})
}

// ---- request handling ----

type reqErr = syscall.Errno

func (s *Server) handle(c *conn, m xswire.Msg) {
	s.mu.Lock()
	hook := s.onRequest
	s.mu.Unlock()
	if hook != nil {
		hook(c.domid, m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log != nil {
		s.log("xsfake: dom%d %s tx=%d %q", c.domid, m.Type, m.TxID, m.Payload)
	}
	reply, fires, err := s.dispatch(c, m)
	switch err {
	case errAlreadyReplied:
	case 0:
		c.send(xswire.Reply(m.Header, reply))
	default:
		c.send(xswire.ErrorMsg(m.Header, err))
	}
	s.fireLocked(fires)
}

// args splits a payload of nul-terminated strings, as xenstored's
// get_strings: the payload must end with a nul.
func args(p []byte) ([]string, bool) {
	if len(p) == 0 || p[len(p)-1] != 0 {
		return nil, false
	}
	a, _ := xswire.SplitStrings(p)
	return a, true
}

// onearg is xenstored's onearg(): exactly one nul-terminated string.
func onearg(p []byte) (string, bool) {
	a, ok := args(p)
	if !ok || len(a) != 1 {
		return "", false
	}
	return a[0], true
}

func (c *conn) home() string { return "/local/domain/" + strconv.FormatUint(uint64(c.domid), 10) }

// canon resolves a client path (relative ones against the domain's home)
// and validates it.
func (c *conn) canon(p string) (string, reqErr) {
	if p == "" {
		return "", syscall.EINVAL
	}
	if !strings.HasPrefix(p, "/") {
		p = c.home() + "/" + p
	}
	if !validPath(p) {
		return "", syscall.EINVAL
	}
	return p, 0
}

func (s *Server) dispatch(c *conn, m xswire.Msg) ([]byte, []fire, reqErr) {
	switch m.Type {
	case xswire.Read, xswire.Write, xswire.Mkdir, xswire.Rm, xswire.Directory,
		xswire.DirectoryPart, xswire.GetPerms, xswire.SetPerms:
		v := &view{nodes: s.nodes, gen: &s.gen}
		var t *tx
		if m.TxID != 0 {
			t = c.txs[m.TxID]
			if t == nil {
				return nil, nil, syscall.ENOENT
			}
			v = t.v
		}
		reply, err := s.nodeOp(c, v, m)
		if err != 0 {
			return nil, nil, err
		}
		if t != nil {
			// Inside a transaction, firings stay in t.v.fires until the
			// commit.
			return reply, nil, 0
		}
		return reply, v.fires, 0
	case xswire.Watch:
		return s.doWatch(c, m.Header, m.Payload)
	case xswire.Unwatch:
		return s.doUnwatch(c, m.Payload)
	case xswire.TransactionStart:
		if m.TxID != 0 {
			return nil, nil, syscall.EBUSY
		}
		if _, ok := onearg(m.Payload); !ok {
			return nil, nil, syscall.EINVAL
		}
		s.nextTx++
		if s.nextTx == 0 {
			s.nextTx = 1
		}
		base := make(map[string]*node, len(s.nodes))
		work := make(map[string]*node, len(s.nodes))
		for p, n := range s.nodes {
			base[p] = n
			work[p] = n
		}
		t := &tx{id: s.nextTx, base: base, owner: c,
			v: &view{nodes: work, touched: map[string]bool{}, written: map[string]bool{}, gen: &s.gen}}
		c.txs[t.id] = t
		return xswire.Strings(strconv.FormatUint(uint64(t.id), 10)), nil, 0
	case xswire.TransactionEnd:
		arg, ok := onearg(m.Payload)
		if !ok || (arg != "T" && arg != "F") {
			return nil, nil, syscall.EINVAL
		}
		t := c.txs[m.TxID]
		if t == nil {
			return nil, nil, syscall.ENOENT
		}
		delete(c.txs, m.TxID)
		if arg == "F" {
			return xswire.OK, nil, 0
		}
		for p := range t.v.touched {
			if s.nodes[p] != t.base[p] {
				return nil, nil, syscall.EAGAIN
			}
		}
		for p := range t.v.written {
			if n := t.v.nodes[p]; n != nil {
				s.nodes[p] = n
			} else {
				delete(s.nodes, p)
			}
		}
		return xswire.OK, t.v.fires, 0
	case xswire.GetDomainPath:
		a, ok := onearg(m.Payload)
		id, err := strconv.ParseUint(a, 10, 32)
		if !ok || err != nil {
			return nil, nil, syscall.EINVAL
		}
		return xswire.Strings("/local/domain/" + strconv.FormatUint(id, 10)), nil, 0
	case xswire.IsDomainIntroduced:
		if c.domid != 0 { // privileged since XSA-115
			return nil, nil, syscall.EACCES
		}
		a, ok := onearg(m.Payload)
		id, err := strconv.ParseUint(a, 10, 32)
		if !ok || err != nil {
			return nil, nil, syscall.EINVAL
		}
		if s.introduced[uint32(id)] {
			return xswire.Strings("T"), nil, 0
		}
		return xswire.Strings("F"), nil, 0
	case xswire.Introduce:
		if c.domid != 0 {
			return nil, nil, syscall.EACCES
		}
		a, ok := args(m.Payload)
		if !ok || len(a) < 3 {
			return nil, nil, syscall.EINVAL
		}
		id, err := strconv.ParseUint(a[0], 10, 16)
		if err != nil {
			return nil, nil, syscall.EINVAL
		}
		if s.introduced[uint32(id)] {
			return xswire.OK, nil, 0
		}
		s.introduced[uint32(id)] = true
		return xswire.OK, []fire{{name: xenif.WatchIntroduceDomain}}, 0
	case xswire.Release, xswire.Resume:
		if c.domid != 0 {
			return nil, nil, syscall.EACCES
		}
		a, ok := onearg(m.Payload)
		id, err := strconv.ParseUint(a, 10, 16)
		if !ok || err != nil {
			return nil, nil, syscall.EINVAL
		}
		if id == 0 {
			return nil, nil, syscall.EINVAL
		}
		if !s.introduced[uint32(id)] {
			return nil, nil, syscall.ENOENT
		}
		if m.Type == xswire.Resume {
			return xswire.OK, nil, 0
		}
		delete(s.introduced, uint32(id))
		return xswire.OK, []fire{{name: xenif.WatchReleaseDomain}}, 0
	case xswire.SetTarget:
		if c.domid != 0 {
			return nil, nil, syscall.EACCES
		}
		if a, ok := args(m.Payload); !ok || len(a) != 2 {
			return nil, nil, syscall.EINVAL
		}
		return xswire.OK, nil, 0
	case xswire.ResetWatches:
		c.watches = nil
		c.txs = map[uint32]*tx{}
		return xswire.OK, nil, 0
	case xswire.Control:
		if c.domid != 0 {
			return nil, nil, syscall.EACCES
		}
		a, _ := xswire.SplitStrings(m.Payload)
		if len(a) == 0 {
			return nil, nil, syscall.EINVAL
		}
		switch a[0] {
		case "check":
			return xswire.OK, nil, 0
		case "help":
			return xswire.Strings("Valid commands:\ncheck\nhelp\n"), nil, 0
		}
		return nil, nil, syscall.EINVAL
	}
	return nil, nil, syscall.ENOSYS
}

// getNode is xenstored's get_node: the node if the connection has all of
// the wanted access, else EACCES; a missing node is ENOENT, or EACCES when
// the nearest existing ancestor does not grant any of the wanted access (so
// a domain learns nothing about nodes it may not see).
func (c *conn) getNode(v *view, p string, want int) (*node, reqErr) {
	n := v.get(p)
	if n != nil && access(c.domid, n.perms)&want == want {
		return n, 0
	}
	errno := syscall.ENOENT
	if n != nil {
		errno = syscall.EACCES
	}
	for q := p; q != "/"; {
		q = parentOf(q)
		if a := v.get(q); a != nil {
			if access(c.domid, a.perms)&want != 0 {
				return nil, errno
			}
			return nil, syscall.EACCES
		}
	}
	return nil, syscall.EACCES
}

// create makes node p (value val) and any missing parents, each inheriting
// its parent's permissions, with an unprivileged creator as owner.
func (c *conn) create(v *view, p string, val []byte) {
	parentPath := parentOf(p)
	parent := v.get(parentPath)
	if parent == nil {
		c.create(v, parentPath, nil)
		parent = v.get(parentPath)
	}
	perms := append(xenif.Perms(nil), parent.perms...)
	if c.domid != 0 {
		perms[0].Domid = c.domid
	}
	np := parent.clone()
	np.children = append(np.children, baseName(p))
	v.put(parentPath, np)
	v.put(p, &node{value: append([]byte(nil), val...), perms: perms})
}

func (s *Server) nodeOp(c *conn, v *view, m xswire.Msg) ([]byte, reqErr) {
	switch m.Type {
	case xswire.Write:
		i := strings.IndexByte(string(m.Payload), 0)
		if i < 0 {
			return nil, syscall.EINVAL
		}
		p, err := c.canon(string(m.Payload[:i]))
		if err != 0 {
			return nil, err
		}
		val := m.Payload[i+1:]
		n, err := c.getNode(v, p, accWrite)
		switch err {
		case 0:
			nn := n.clone()
			nn.value = append([]byte(nil), val...)
			v.put(p, nn)
		case syscall.ENOENT:
			c.create(v, p, val)
		default:
			return nil, err
		}
		v.fires = append(v.fires, v.fireFor(p))
		return xswire.OK, 0
	case xswire.DirectoryPart:
		a, ok := args(m.Payload)
		if !ok || len(a) != 2 {
			return nil, syscall.EINVAL
		}
		off, perr := strconv.ParseUint(a[1], 10, 32)
		p, err := c.canon(a[0])
		if perr != nil {
			return nil, syscall.EINVAL
		}
		if err != 0 {
			return nil, err
		}
		n, err := c.getNode(v, p, accRead)
		if err != 0 {
			return nil, err
		}
		return directoryPart(n, int(off))
	case xswire.SetPerms:
		a, ok := args(m.Payload)
		if !ok || len(a) < 2 {
			return nil, syscall.EINVAL
		}
		p, err := c.canon(a[0])
		if err != 0 {
			return nil, err
		}
		var perms xenif.Perms
		for _, ps := range a[1:] {
			e, perr := xenif.ParsePerm(ps)
			if perr != nil {
				return nil, syscall.EINVAL
			}
			perms = append(perms, e)
		}
		n, err := c.getNode(v, p, accWrite|accOwner)
		if err != 0 {
			return nil, err
		}
		if c.domid != 0 && perms[0].Domid != n.perms[0].Domid {
			return nil, syscall.EPERM
		}
		nn := n.clone()
		nn.perms = perms
		v.put(p, nn)
		v.fires = append(v.fires, v.fireFor(p))
		return xswire.OK, 0
	}

	arg, ok := onearg(m.Payload)
	if !ok {
		return nil, syscall.EINVAL
	}
	p, err := c.canon(arg)
	if err != 0 {
		return nil, err
	}
	switch m.Type {
	case xswire.Read:
		n, err := c.getNode(v, p, accRead)
		if err != 0 {
			return nil, err
		}
		return append([]byte(nil), n.value...), 0
	case xswire.Directory:
		n, err := c.getNode(v, p, accRead)
		if err != 0 {
			return nil, err
		}
		b := xswire.Strings(n.children...)
		if len(b) > xswire.PayloadMax {
			return nil, syscall.E2BIG
		}
		return b, 0
	case xswire.GetPerms:
		n, err := c.getNode(v, p, accRead)
		if err != 0 {
			return nil, err
		}
		var ss []string
		for _, e := range n.perms {
			ss = append(ss, xenif.Perms{e}.String())
		}
		return xswire.Strings(ss...), 0
	case xswire.Mkdir:
		_, err := c.getNode(v, p, accWrite)
		switch err {
		case 0:
			return xswire.OK, 0
		case syscall.ENOENT:
			c.create(v, p, nil)
			v.fires = append(v.fires, v.fireFor(p))
			return xswire.OK, 0
		}
		return nil, err
	case xswire.Rm:
		n, err := c.getNode(v, p, accWrite)
		if err == syscall.ENOENT {
			// Removing a missing node is fine if its parent exists.
			if v.get(parentOf(p)) != nil {
				return xswire.OK, 0
			}
			return nil, syscall.ENOENT
		}
		if err != 0 {
			return nil, err
		}
		if p == "/" {
			return nil, syscall.EINVAL
		}
		pp := parentOf(p)
		top := fire{name: p, perms: n.perms, pperms: v.get(pp).perms}
		c.removeTree(v, p, n)
		np := v.get(pp).clone()
		name := baseName(p)
		for i, ch := range np.children {
			if ch == name {
				np.children = append(np.children[:i], np.children[i+1:]...)
				break
			}
		}
		v.put(pp, np)
		v.fires = append(v.fires, top)
		return xswire.OK, 0
	}
	return nil, syscall.ENOSYS
}

// fireFor records a change of the existing node p.
func (v *view) fireFor(p string) fire {
	f := fire{name: p, perms: v.nodes[p].perms}
	if pn := v.nodes[parentOf(p)]; pn != nil && p != "/" {
		f.pperms = pn.perms
	}
	return f
}

// removeTree deletes p's descendants (depth first, each firing the watches
// set exactly on it, as xenstored does) and then p itself.
func (c *conn) removeTree(v *view, p string, n *node) {
	for _, ch := range n.children {
		cp := p + "/" + ch
		if p == "/" {
			cp = "/" + ch
		}
		if cn := v.get(cp); cn != nil {
			c.removeTree(v, cp, cn)
			v.fires = append(v.fires, fire{name: cp, exact: true, perms: cn.perms, pperms: n.perms})
		}
	}
	v.del(p)
}

// directoryPart answers XS_DIRECTORY_PART: "<generation>\0" followed by as
// many whole child names (from byte offset off of the full list) as fit, and
// an extra "\0" once the list is complete.
func directoryPart(n *node, off int) ([]byte, reqErr) {
	all := xswire.Strings(n.children...)
	if off > len(all) {
		return nil, syscall.EINVAL
	}
	gen := strconv.FormatUint(n.gen, 10)
	room := xswire.PayloadMax - len(gen) - 1
	rest := all[off:]
	out := xswire.Strings(gen)
	if len(rest)+1 <= room {
		out = append(out, rest...)
		return append(out, 0), 0
	}
	cut := 0
	for i := 0; i < len(rest) && i < room; i++ {
		if rest[i] == 0 {
			cut = i + 1
		}
	}
	return append(out, rest[:cut]...), 0
}

func (s *Server) doWatch(c *conn, h xswire.Header, payload []byte) ([]byte, []fire, reqErr) {
	a, ok := args(payload)
	if !ok || len(a) != 2 {
		return nil, nil, syscall.EINVAL
	}
	w, err := c.watchFor(a[0], a[1])
	if err != 0 {
		return nil, nil, err
	}
	for _, o := range c.watches {
		if o.node == w.node && o.token == w.token {
			return nil, nil, syscall.EEXIST
		}
	}
	c.watches = append(c.watches, w)
	// Reply first, then the initial firing, as xenstored does.
	c.send(xswire.Reply(h, xswire.OK))
	c.send(xswire.Event(a[0], w.token))
	return nil, nil, errAlreadyReplied
}

// errAlreadyReplied is a sentinel (never sent) for handlers that queued
// their own reply.
const errAlreadyReplied = syscall.Errno(0x7fffffff)

func (c *conn) watchFor(path, token string) (*watch, reqErr) {
	if strings.HasPrefix(path, "@") {
		if len(path) > xswire.RelPathMax {
			return nil, syscall.EINVAL
		}
		return &watch{node: path, token: token}, 0
	}
	p, err := c.canon(path)
	if err != 0 {
		return nil, err
	}
	w := &watch{node: p, token: token}
	if !strings.HasPrefix(path, "/") {
		w.relative = c.home() + "/"
	}
	return w, 0
}

func (s *Server) doUnwatch(c *conn, payload []byte) ([]byte, []fire, reqErr) {
	a, ok := args(payload)
	if !ok || len(a) != 2 {
		return nil, nil, syscall.EINVAL
	}
	w, err := c.watchFor(a[0], a[1])
	if err != 0 {
		return nil, nil, err
	}
	for i, o := range c.watches {
		if o.node == w.node && o.token == w.token {
			c.watches = append(c.watches[:i:i], c.watches[i+1:]...)
			return xswire.OK, nil, 0
		}
	}
	return nil, nil, syscall.ENOENT
}

// fireLocked sends watch events for fs to every connection with a matching
// watch that may read the node or its parent (xenstored's watch_permitted;
// special events: dom0 connections only). The initial firing of a new
// watch is sent by doWatch regardless of permissions, as xenstored does.
func (s *Server) fireLocked(fs []fire) {
	if len(fs) == 0 {
		return
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	// Deterministic order helps when reading logs.
	sort.Slice(conns, func(i, j int) bool { return conns[i].domid < conns[j].domid })
	for _, f := range fs {
		special := strings.HasPrefix(f.name, "@")
		for _, c := range conns {
			if special {
				if c.domid != 0 {
					continue
				}
			} else if access(c.domid, f.perms)&accRead == 0 &&
				(f.pperms == nil || access(c.domid, f.pperms)&accRead == 0) {
				// xenstored's watch_permitted: the node or its parent
				// must be readable.
				continue
			}
			for _, w := range c.watches {
				var hit bool
				if special || f.exact {
					hit = f.name == w.node
				} else {
					hit = isChild(f.name, w.node)
				}
				if !hit {
					continue
				}
				name := f.name
				if w.relative != "" {
					name = strings.TrimPrefix(name, w.relative)
				}
				c.send(xswire.Event(name, w.token))
			}
		}
	}
}
