package plugin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsutil"
)

// Toolstack performs vscsi operations on one xenstore connection. It is
// safe for concurrent use; operations on one vhost are serialised (see
// lockVHosts), operations on different vhosts run in parallel.
//
// New starts one goroutine (the watch dispatcher of xsutil.Mux); Close
// stops it. Nothing is started before New.
type Toolstack struct {
	s   xenif.Store
	mux *xsutil.Mux
	opt Options

	mu    sync.Mutex
	locks map[vhostKey]*vhostLock
}

// vhostKey names a vhost for in-process locking: the guest and the vdev
// host number that selects the vhost (one-to-one with its devid within a
// domain, and known from a spec before any xenstore read).
type vhostKey struct {
	domid uint32
	index uint32
}

type vhostLock struct {
	ch   chan struct{} // a 1-slot semaphore, so waiting can honour a context
	refs int
}

// New returns a Toolstack over s. The caller keeps ownership of s and
// closes it after Close.
func New(s xenif.Store, opt Options) *Toolstack {
	return &Toolstack{s: s, mux: xsutil.NewMux(s), opt: opt.withDefaults(), locks: map[vhostKey]*vhostLock{}}
}

// Close stops the watch dispatcher. It does not close the Store.
func (t *Toolstack) Close() error { return t.mux.Close() }

// Options returns the effective options (defaults filled in).
func (t *Toolstack) Options() Options { return t.opt }

// domains is where this toolstack writes new vhosts of a domain: under
// its own backend type (Options.BackendType).
func (t *Toolstack) domains(domid uint32) cfgparse.Domains {
	return cfgparse.Domains{Frontend: domid, Backend: t.opt.BackendDomid, Type: t.opt.BackendType}
}

// backendTypes are the backend type directories a domain's vhosts may be
// under: ours first, then the kernel's and the userspace backend's. They
// share the guest's device/vscsi/<vhost>, so vhost numbers are allocated
// across all of them, and list, detach, destroy and cleanup look at all.
func (t *Toolstack) backendTypes() []string {
	out := []string{t.opt.BackendType}
	for _, ty := range []string{cfgparse.TypeKernel, cfgparse.TypeUserspace} {
		if ty != t.opt.BackendType {
			out = append(out, ty)
		}
	}
	return out
}

// vhostDomains returns the Domains of an existing vhost, with the backend
// type that serves it: the one named by FE/backend (the full path the
// guest follows), else the first type directory holding the vhost, else
// ours.
func (t *Toolstack) vhostDomains(tx xenif.Tx, domid uint32, vhost int) cfgparse.Domains {
	d := t.domains(domid)
	if p, err := readOpt(t.s, tx, cfgparse.FrontendPath(d, vhost)+"/backend"); err == nil && p != "" {
		prefix := fmt.Sprintf("/local/domain/%d/backend/", d.Backend)
		suffix := fmt.Sprintf("/%d/%d", domid, vhost)
		if strings.HasPrefix(p, prefix) && strings.HasSuffix(p, suffix) && len(p) > len(prefix)+len(suffix) {
			if ty := p[len(prefix) : len(p)-len(suffix)]; cfgparse.ValidBackendType(ty) == nil {
				d.Type = ty
				return d
			}
		}
	}
	for _, ty := range t.backendTypes() {
		c := d
		c.Type = ty
		if _, err := t.s.Read(tx, cfgparse.BackendPath(c, vhost)); err == nil {
			return c
		}
	}
	return d
}

// ErrInvalidArgument is wrapped by errors about a malformed argument (a
// vdev that is not h:c:t:l, an empty p-dev): the caller's mistake, EINVAL
// in the C API. The message is the argument error's alone.
var ErrInvalidArgument = errors.New("invalid argument")

// invalidArgument wraps err as an ErrInvalidArgument without adding text.
func invalidArgument(err error) error { return argError{err} }

type argError struct{ error }

func (e argError) Unwrap() []error { return []error{e.error, ErrInvalidArgument} }

// Errors of domain lookup; test with errors.Is.
var (
	ErrNoDomain        = errors.New("no such domain")
	ErrAmbiguousDomain = errors.New("domain name is ambiguous")
)

// DomainID resolves a domain given by id or name. A number must name an
// existing /local/domain/<id>; a name must match exactly one
// /local/domain/*/name.
func (t *Toolstack) DomainID(domain string) (uint32, error) {
	if domain == "" {
		return 0, fmt.Errorf("empty domain name: %w", ErrNoDomain)
	}
	if n, err := strconv.ParseUint(domain, 10, 32); err == nil {
		if n >= xenif.DomidFirstReserved {
			return 0, fmt.Errorf("domain id %s out of range (0-%d): %w", domain, xenif.DomidFirstReserved-1, ErrNoDomain)
		}
		if _, err := t.s.Read(xenif.NoTx, "/local/domain/"+domain); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				return 0, fmt.Errorf("domain %s: %w (no /local/domain/%s in xenstore)", domain, ErrNoDomain, domain)
			}
			return 0, err
		}
		return uint32(n), nil
	}
	ids, err := t.s.Directory(xenif.NoTx, "/local/domain")
	if err != nil {
		return 0, fmt.Errorf("looking up domain %q: %w", domain, err)
	}
	var found []string
	for _, id := range ids {
		name, err := t.s.Read(xenif.NoTx, "/local/domain/"+id+"/name")
		if err == nil && name == domain {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("domain %q: %w", domain, ErrNoDomain)
	case 1:
		n, err := strconv.ParseUint(found[0], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("domain %q: bad domain id %q in xenstore", domain, found[0])
		}
		return uint32(n), nil
	}
	sort.Strings(found)
	return 0, fmt.Errorf("domain %q: %w: domains %v all have that name", domain, ErrAmbiguousDomain, found)
}

// lockVHosts takes the in-process locks of the given vhosts of a domain
// (sorted, so two operations never wait on each other crosswise) and
// returns the unlock function; it gives up when ctx ends. Between
// processes the xenstore transaction and the backend-state screen
// (1/3/7/8 = busy, wait and retry) serialise.
func (t *Toolstack) lockVHosts(ctx context.Context, domid uint32, indexes []uint32) (func(), error) {
	idx := append([]uint32(nil), indexes...)
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	var held []*vhostLock
	var keys []vhostKey
	unlock := func() {
		for i := len(held) - 1; i >= 0; i-- {
			<-held[i].ch
			t.release(keys[i], held[i])
		}
	}
	for i, x := range idx {
		if i > 0 && idx[i-1] == x {
			continue
		}
		k := vhostKey{domid, x}
		t.mu.Lock()
		l := t.locks[k]
		if l == nil {
			l = &vhostLock{ch: make(chan struct{}, 1)}
			t.locks[k] = l
		}
		l.refs++
		t.mu.Unlock()
		select {
		case l.ch <- struct{}{}:
			held = append(held, l)
			keys = append(keys, k)
		case <-ctx.Done():
			t.release(k, l)
			unlock()
			return nil, fmt.Errorf("waiting for another operation on vdev host %d of domain %d: %w", x, domid, ctx.Err())
		}
	}
	return unlock, nil
}

// release drops one reference to a vhost lock, forgetting it at zero.
func (t *Toolstack) release(k vhostKey, l *vhostLock) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(t.locks, k)
	}
}

// metaPath is the toolstack's private per-vhost directory,
// /libxl/<domid>/vscsi/<devid>, holding next_vscsidev_id (the monotonic
// dev-N counter, as SUSE's libxl keeps it) and idx (the vdev host number
// the vhost serves). Only dom0 can read it; neither peer looks at it.
func metaPath(domid uint32, vhost int) string {
	return fmt.Sprintf("/libxl/%d/vscsi/%d", domid, vhost)
}

func metaRoot(domid uint32) string { return fmt.Sprintf("/libxl/%d/vscsi", domid) }

func domainPath(domid uint32) string { return "/local/domain/" + strconv.FormatUint(uint64(domid), 10) }

// readInt reads a decimal node; ok is false if it is missing or not a number.
func readInt(s xenif.Store, tx xenif.Tx, path string) (int, bool, error) {
	v, err := s.Read(tx, path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return 0, false, nil
		}
		return 0, false, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false, nil
	}
	return n, true, nil
}

// readOpt reads a node, "" if missing.
func readOpt(s xenif.Store, tx xenif.Tx, path string) (string, error) {
	v, err := s.Read(tx, path)
	if err != nil && errors.Is(err, syscall.ENOENT) {
		return "", nil
	}
	return v, err
}

// dirOpt lists a directory, nil if missing.
func dirOpt(s xenif.Store, tx xenif.Tx, path string) ([]string, error) {
	l, err := s.Directory(tx, path)
	if err != nil && errors.Is(err, syscall.ENOENT) {
		return nil, nil
	}
	return l, err
}

// numericNames returns the entries of names that are non-negative decimal
// numbers, as ints, sorted.
func numericNames(names []string, prefix string) []int {
	var out []int
	for _, n := range names {
		if len(n) <= len(prefix) || n[:len(prefix)] != prefix {
			continue
		}
		v, err := strconv.Atoi(n[len(prefix):])
		if err != nil || v < 0 || strconv.Itoa(v) != n[len(prefix):] {
			continue
		}
		out = append(out, v)
	}
	sort.Ints(out)
	return out
}
