package xsfake

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"

	"github.com/govscsi/govscsi/libxlgo/internal/cerr"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xswire"
)

// Client is a pure-Go xenstore client speaking the wire protocol over any
// stream: an in-process pipe (Server.Connect) or a Unix socket (Dial). It
// implements xenif.Store, so pure-Go tests need neither cgo nor
// libxenstore. Errors read like libxlgo/xs's ("xs read /x: no such file or
// directory") and wrap the errno. Safe for concurrent use.
type Client struct {
	rw io.ReadWriteCloser

	wmu sync.Mutex // one writer at a time

	mu      sync.Mutex
	pending map[uint32]chan xswire.Msg
	nextReq uint32
	closed  bool
	evq     []xenif.WatchEvent
	evWake  chan struct{}

	events chan xenif.WatchEvent
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

var _ xenif.Store = (*Client)(nil)

// Dial connects to a xenstore Unix socket (ours, or a real xenstored's).
func Dial(path string) (*Client, error) {
	nc, err := net.Dial("unix", path)
	if err != nil {
		return nil, cerr.FromErr("xs", "open", path, err)
	}
	return NewClient(nc), nil
}

// NewClient starts a client on rw. It owns rw and closes it on Close.
func NewClient(rw io.ReadWriteCloser) *Client {
	c := &Client{
		rw:      rw,
		pending: map[uint32]chan xswire.Msg{},
		evWake:  make(chan struct{}, 1),
		events:  make(chan xenif.WatchEvent),
		done:    make(chan struct{}),
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.eventLoop()
	return c
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	for {
		m, err := xswire.ReadMsg(c.rw)
		if err != nil {
			c.mu.Lock()
			c.closed = true
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		if m.Type == xswire.WatchEvent {
			if a, _ := xswire.SplitStrings(m.Payload); len(a) >= 2 {
				c.evq = append(c.evq, xenif.WatchEvent{Path: a[0], Token: a[1]})
				select {
				case c.evWake <- struct{}{}:
				default:
				}
			}
		} else if ch := c.pending[m.ReqID]; ch != nil {
			delete(c.pending, m.ReqID)
			ch <- m
		}
		c.mu.Unlock()
	}
}

// eventLoop moves queued events to the Events channel, so the reader never
// blocks on a slow consumer (which could be waiting for a reply).
func (c *Client) eventLoop() {
	defer c.wg.Done()
	defer close(c.events)
	for {
		c.mu.Lock()
		var ev xenif.WatchEvent
		have := len(c.evq) > 0
		if have {
			ev = c.evq[0]
			c.evq = c.evq[1:]
		}
		c.mu.Unlock()
		if !have {
			select {
			case <-c.evWake:
				continue
			case <-c.done:
				return
			}
		}
		select {
		case c.events <- ev:
		case <-c.done:
			return
		}
	}
}

func (c *Client) call(op xswire.Op, tx xenif.Tx, opName, path string, payload []byte) ([]byte, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, xenif.ErrStoreClosed
	}
	c.nextReq++
	id := c.nextReq
	ch := make(chan xswire.Msg, 1)
	c.pending[id] = ch
	c.mu.Unlock()

	m := xswire.Msg{Header: xswire.Header{Type: op, ReqID: id, TxID: uint32(tx)}, Payload: payload}
	b, err := m.Encode()
	if err == nil {
		c.wmu.Lock()
		_, err = c.rw.Write(b)
		c.wmu.Unlock()
	}
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		if errors.Is(err, syscall.E2BIG) {
			return nil, cerr.New("xs", opName, path, syscall.E2BIG)
		}
		return nil, xenif.ErrStoreClosed
	}
	r, ok := <-ch
	if !ok {
		return nil, xenif.ErrStoreClosed
	}
	if r.Type == xswire.Error {
		return nil, cerr.New("xs", opName, path, xswire.ParseError(r.Payload))
	}
	return r.Payload, nil
}

func trimNul(b []byte) string {
	if n := len(b); n > 0 && b[n-1] == 0 {
		b = b[:n-1]
	}
	return string(b)
}

// Read implements xenif.Store.
func (c *Client) Read(tx xenif.Tx, path string) (string, error) {
	b, err := c.call(xswire.Read, tx, "read", path, xswire.Strings(path))
	return string(b), err
}

// Write implements xenif.Store.
func (c *Client) Write(tx xenif.Tx, path, value string) error {
	_, err := c.call(xswire.Write, tx, "write", path, append(xswire.Strings(path), value...))
	return err
}

// Mkdir implements xenif.Store.
func (c *Client) Mkdir(tx xenif.Tx, path string) error {
	_, err := c.call(xswire.Mkdir, tx, "mkdir", path, xswire.Strings(path))
	return err
}

// Rm implements xenif.Store.
func (c *Client) Rm(tx xenif.Tx, path string) error {
	_, err := c.call(xswire.Rm, tx, "rm", path, xswire.Strings(path))
	return err
}

// Directory implements xenif.Store.
func (c *Client) Directory(tx xenif.Tx, path string) ([]string, error) {
	b, err := c.call(xswire.Directory, tx, "directory", path, xswire.Strings(path))
	if errors.Is(err, syscall.E2BIG) {
		return c.directoryPart(tx, path)
	}
	if err != nil {
		return nil, err
	}
	names, _ := xswire.SplitStrings(b)
	return names, nil
}

// directoryPart lists a directory too big for one reply with
// XS_DIRECTORY_PART, as libxenstore does: chunks from a byte offset, each
// prefixed by the node's generation; a changed generation restarts.
func (c *Client) directoryPart(tx xenif.Tx, path string) ([]string, error) {
	var all []byte
	gen := ""
	for restarts := 0; restarts < 100; {
		b, err := c.call(xswire.DirectoryPart, tx, "directory", path,
			xswire.Strings(path, strconv.Itoa(len(all))))
		if err != nil {
			return nil, err
		}
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, cerr.New("xs", "directory", path, syscall.EIO)
		}
		g, chunk := string(b[:i]), b[i+1:]
		if gen != "" && g != gen {
			all, gen = nil, ""
			restarts++
			continue
		}
		gen = g
		// The last chunk ends with an extra nul.
		if len(chunk) == 0 || (len(chunk) >= 1 && chunk[len(chunk)-1] == 0 &&
			(len(chunk) == 1 || chunk[len(chunk)-2] == 0)) {
			if len(chunk) > 0 {
				chunk = chunk[:len(chunk)-1]
			}
			all = append(all, chunk...)
			names, _ := xswire.SplitStrings(all)
			return names, nil
		}
		all = append(all, chunk...)
	}
	return nil, cerr.New("xs", "directory", path, syscall.EAGAIN)
}

// GetPerms implements xenif.Store.
func (c *Client) GetPerms(tx xenif.Tx, path string) (xenif.Perms, error) {
	b, err := c.call(xswire.GetPerms, tx, "get_perms", path, xswire.Strings(path))
	if err != nil {
		return nil, err
	}
	ss, _ := xswire.SplitStrings(b)
	var p xenif.Perms
	for _, s := range ss {
		e, err := xenif.ParsePerm(s)
		if err != nil {
			return nil, cerr.New("xs", "get_perms", path, syscall.EINVAL)
		}
		p = append(p, e)
	}
	return p, nil
}

// SetPerms implements xenif.Store.
func (c *Client) SetPerms(tx xenif.Tx, path string, p xenif.Perms) error {
	if len(p) == 0 {
		return cerr.New("xs", "set_perms", path, syscall.EINVAL)
	}
	ss := []string{path}
	for _, e := range p {
		ss = append(ss, xenif.Perms{e}.String())
	}
	_, err := c.call(xswire.SetPerms, tx, "set_perms", path, xswire.Strings(ss...))
	return err
}

// Begin implements xenif.Store.
func (c *Client) Begin() (xenif.Tx, error) {
	b, err := c.call(xswire.TransactionStart, 0, "transaction_start", "", xswire.Strings(""))
	if err != nil {
		return 0, err
	}
	id, perr := strconv.ParseUint(trimNul(b), 10, 32)
	if perr != nil || id == 0 {
		return 0, cerr.New("xs", "transaction_start", "", syscall.EIO)
	}
	return xenif.Tx(id), nil
}

// End implements xenif.Store.
func (c *Client) End(tx xenif.Tx, abort bool) error {
	arg := "T"
	if abort {
		arg = "F"
	}
	_, err := c.call(xswire.TransactionEnd, tx, "transaction_end", strconv.FormatUint(uint64(tx), 10), xswire.Strings(arg))
	return err
}

// Watch implements xenif.Store.
func (c *Client) Watch(path, token string) error {
	_, err := c.call(xswire.Watch, 0, "watch", path, xswire.Strings(path, token))
	return err
}

// Unwatch implements xenif.Store.
func (c *Client) Unwatch(path, token string) error {
	_, err := c.call(xswire.Unwatch, 0, "unwatch", path, xswire.Strings(path, token))
	return err
}

// Events implements xenif.Store.
func (c *Client) Events() <-chan xenif.WatchEvent { return c.events }

// DomainPath implements xenif.Store.
func (c *Client) DomainPath(domid uint32) (string, error) {
	d := strconv.FormatUint(uint64(domid), 10)
	b, err := c.call(xswire.GetDomainPath, 0, "get_domain_path", d, xswire.Strings(d))
	return trimNul(b), err
}

// IntroduceDomain sends XS_INTRODUCE (dom0 only); mfn and port are
// recorded nowhere by the fake.
func (c *Client) IntroduceDomain(domid uint32, mfn uint64, port uint32) error {
	d := strconv.FormatUint(uint64(domid), 10)
	_, err := c.call(xswire.Introduce, 0, "introduce", d, xswire.Strings(d,
		strconv.FormatUint(mfn, 10), strconv.FormatUint(uint64(port), 10)))
	return err
}

// ReleaseDomain sends XS_RELEASE (dom0 only).
func (c *Client) ReleaseDomain(domid uint32) error {
	d := strconv.FormatUint(uint64(domid), 10)
	_, err := c.call(xswire.Release, 0, "release", d, xswire.Strings(d))
	return err
}

// IsDomainIntroduced sends XS_IS_DOMAIN_INTRODUCED.
func (c *Client) IsDomainIntroduced(domid uint32) (bool, error) {
	d := strconv.FormatUint(uint64(domid), 10)
	b, err := c.call(xswire.IsDomainIntroduced, 0, "is_domain_introduced", d, xswire.Strings(d))
	return err == nil && trimNul(b) != "F", err
}

// Raw sends one request and returns the reply message as received (for
// protocol tests).
func (c *Client) Raw(op xswire.Op, tx uint32, payload []byte) ([]byte, error) {
	return c.call(op, xenif.Tx(tx), op.String(), "", payload)
}

// Close implements xenif.Store. It is idempotent and waits for the
// client's goroutines to exit; Events is closed.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.rw.Close()
		close(c.done)
		c.wg.Wait()
	})
	return nil
}
