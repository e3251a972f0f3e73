package plugin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// EventKind says what a StateEvent reports.
type EventKind int

const (
	// EventVHostState: a vhost's backend or frontend state changed.
	EventVHostState EventKind = 1
	// EventDeviceState: a device's (vscsi-devs/dev-N) backend or frontend
	// state changed.
	EventDeviceState EventKind = 2
	// EventDomainGone: the domain's /local/domain/<domid> went away (it
	// was destroyed, or migrated or saved away). It is the domain's last
	// event.
	EventDomainGone EventKind = 3
)

// Side is the peer whose state a StateEvent reports.
type Side int

const (
	SideBackend  Side = 0
	SideFrontend Side = 1
)

// StateEvent is one change seen by WatchStates. States are xenbus states;
// 0 (xenif.StateUnknown) means "no such node": OldState 0 for a vhost or device
// that appeared, State 0 for one that went away.
type StateEvent struct {
	Kind  EventKind
	Domid uint32
	// VHost is the vhost's devid (-1 for EventDomainGone), Dev the
	// device's dev-N number (-1 unless EventDeviceState).
	VHost, Dev int
	Side       Side
	State      int
	OldState   int
	// VDev is the device's virtual address ("h:c:t:l", EventDeviceState);
	// BackendType the backend type directory serving the vhost.
	VDev        string
	BackendType string
}

// stateKey names one state node of a domain's vscsi trees.
type stateKey struct {
	vhost, dev int // dev -1: the vhost's own state
	side       Side
}

type stateVal struct {
	state     int
	vdev, typ string
}

// domainStates reads every vscsi state of a domain (List's one
// transaction): only states that exist (non-zero) are in the map.
func (t *Toolstack) domainStates(domid uint32) (map[stateKey]stateVal, error) {
	vs, err := t.List(domid)
	if err != nil {
		return nil, err
	}
	m := map[stateKey]stateVal{}
	put := func(k stateKey, st int, vdev, typ string) {
		if st != xenif.StateUnknown {
			m[k] = stateVal{st, vdev, typ}
		}
	}
	for _, v := range vs {
		put(stateKey{v.VHost, -1, SideBackend}, v.BackendState, "", v.BackendType)
		put(stateKey{v.VHost, -1, SideFrontend}, v.FrontendState, "", v.BackendType)
		for _, d := range v.Devs {
			put(stateKey{v.VHost, d.ID, SideBackend}, d.BackendState, d.VDev, v.BackendType)
			put(stateKey{v.VHost, d.ID, SideFrontend}, d.FrontendState, d.VDev, v.BackendType)
		}
	}
	return m, nil
}

// diffStates emits an event for every state that differs between old and
// now, ordered by vhost, then the vhost before its devices, then device,
// then backend before frontend.
func diffStates(domid uint32, old, now map[stateKey]stateVal, emit func(StateEvent)) {
	keys := make([]stateKey, 0, len(old)+len(now))
	for k := range old {
		keys = append(keys, k)
	}
	for k := range now {
		if _, ok := old[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.vhost != b.vhost {
			return a.vhost < b.vhost
		}
		if a.dev != b.dev {
			return a.dev < b.dev
		}
		return a.side < b.side
	})
	for _, k := range keys {
		o, n := old[k], now[k]
		if o.state == n.state {
			continue
		}
		ev := StateEvent{Kind: EventVHostState, Domid: domid, VHost: k.vhost, Dev: -1, Side: k.side,
			State: n.state, OldState: o.state, VDev: n.vdev, BackendType: n.typ}
		if n.state == xenif.StateUnknown {
			ev.VDev, ev.BackendType = o.vdev, o.typ
		}
		if k.dev >= 0 {
			ev.Kind, ev.Dev = EventDeviceState, k.dev
		} else {
			ev.VDev = ""
		}
		emit(ev)
	}
}

// domainWatchPaths are the xenstore subtrees holding a domain's vscsi
// states: its frontend directory and its directory under every backend
// type this toolstack knows. Removing the domain's home fires the
// frontend watch too (xenstored fires the watches of a removed node's
// descendants).
func (t *Toolstack) domainWatchPaths(domid uint32) []string {
	d := t.domains(domid)
	paths := []string{fmt.Sprintf("/local/domain/%d/device/vscsi", domid)}
	for _, ty := range t.backendTypes() {
		paths = append(paths, fmt.Sprintf("/local/domain/%d/backend/%s/%d", d.Backend, ty, domid))
	}
	return paths
}

// wakeSet collects which domains' watches fired (and whether the domain
// list may have changed) for the loop of WatchStates.
type wakeSet struct {
	mu      sync.Mutex
	dirty   map[uint32]bool
	domains bool
	wake    chan struct{}
}

func (w *wakeSet) mark(domid uint32, domains bool) {
	w.mu.Lock()
	if domains {
		w.domains = true
	} else {
		w.dirty[domid] = true
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *wakeSet) take() (map[uint32]bool, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, dom := w.dirty, w.domains
	w.dirty, w.domains = map[uint32]bool{}, false
	return d, dom
}

// watched is one domain being followed: its last states and the cancel
// functions of its watches.
type watched struct {
	states  map[stateKey]stateVal
	cancels []func() error
}

// WatchStates reports state changes until ctx ends: every change of a
// vhost's or a device's xenbus state, backend or frontend side, of domain
// domid (of every domain, including those created later, if all is set),
// and a domain's disappearance (EventDomainGone, its last event). It uses
// xenstore watches (no polling) and compares what the vscsi trees hold
// after each firing with what they held before, so a burst of writes is
// reported as the changes between the pictures seen, never a made-up
// intermediate state. ready, if set, is called once the watches are in
// place and the first picture taken: every change after that is
// reported. emit is called from WatchStates' own goroutine, in order.
//
// For one domain WatchStates returns nil after its EventDomainGone (or
// ErrNoDomain if it does not exist at the start); otherwise nil when ctx
// ends, or the xenstore error that stopped it.
func (t *Toolstack) WatchStates(ctx context.Context, domid uint32, all bool, ready func(), emit func(StateEvent)) error {
	ws := &wakeSet{dirty: map[uint32]bool{}, wake: make(chan struct{}, 1)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// forward turns one watch's notifications into marks.
	forward := func(ch <-chan xenif.WatchEvent, domid uint32, domains bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case _, ok := <-ch:
					if !ok {
						return
					}
					ws.mark(domid, domains)
				case <-stop:
					return
				}
			}
		}()
	}
	var cancelAll []func() error
	defer func() {
		for _, c := range cancelAll {
			c() //nolint:errcheck // best effort on the way out
		}
	}()
	doms := map[uint32]*watched{}
	follow := func(domid uint32, baseline bool) error {
		w := &watched{states: map[stateKey]stateVal{}}
		for _, p := range t.domainWatchPaths(domid) {
			ch, cancel, err := t.mux.Watch(p)
			if err != nil {
				for _, c := range w.cancels {
					c() //nolint:errcheck // already failing
				}
				return fmt.Errorf("watching %s: %w", p, err)
			}
			w.cancels = append(w.cancels, cancel)
			forward(ch, domid, false)
		}
		if baseline {
			st, err := t.domainStates(domid)
			if err != nil {
				for _, c := range w.cancels {
					c() //nolint:errcheck // already failing
				}
				return err
			}
			w.states = st
		}
		doms[domid] = w
		return nil
	}
	unfollow := func(domid uint32) {
		if w := doms[domid]; w != nil {
			for _, c := range w.cancels {
				c() //nolint:errcheck // the domain is gone: its watches may already be
			}
			delete(doms, domid)
		}
	}
	defer func() {
		for id := range doms {
			unfollow(id)
		}
	}()

	specials := []string{xenif.WatchReleaseDomain}
	if all {
		specials = append(specials, xenif.WatchIntroduceDomain)
	}
	for _, p := range specials {
		ch, cancel, err := t.mux.Watch(p)
		if err != nil {
			return fmt.Errorf("watching %s: %w", p, err)
		}
		cancelAll = append(cancelAll, cancel)
		forward(ch, 0, true)
	}
	if all {
		ids, err := t.domainIDs()
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := follow(id, true); err != nil {
				return err
			}
		}
	} else {
		if alive, err := t.domainAlive(domid); err != nil {
			return err
		} else if !alive {
			return fmt.Errorf("domain %d: %w", domid, ErrNoDomain)
		}
		if err := follow(domid, true); err != nil {
			return err
		}
	}
	if ready != nil {
		ready()
	}

	// rescan compares one domain's trees with its last picture; a domain
	// whose home is gone gets its final changes, then EventDomainGone.
	retry := false
	rescan := func(id uint32) (gone bool, err error) {
		w := doms[id]
		if w == nil {
			return false, nil
		}
		alive, err := t.domainAlive(id)
		if err != nil {
			return false, err
		}
		st, err := t.domainStates(id)
		if errors.Is(err, syscall.EAGAIN) {
			// List's transaction kept conflicting with writers (a busy
			// moment): look again shortly, rather than end the watch.
			retry = true
			ws.mark(id, false)
			return false, nil
		}
		if err != nil {
			return false, err
		}
		diffStates(id, w.states, st, emit)
		w.states = st
		if !alive {
			emit(StateEvent{Kind: EventDomainGone, Domid: id, VHost: -1, Dev: -1})
			unfollow(id)
			return true, nil
		}
		return false, nil
	}
	for {
		if retry {
			retry = false
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retryDelay):
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ws.wake:
		}
		dirty, domains := ws.take()
		if domains {
			if all {
				ids, err := t.domainIDs()
				if err != nil {
					return err
				}
				present := map[uint32]bool{}
				for _, id := range ids {
					present[id] = true
					if doms[id] == nil {
						// A new domain: everything it has is news.
						if err := follow(id, false); err != nil {
							return err
						}
						dirty[id] = true
					}
				}
				for id := range doms {
					if !present[id] {
						dirty[id] = true
					}
				}
			} else {
				dirty[domid] = true
			}
		}
		ids := make([]uint32, 0, len(dirty))
		for id := range dirty {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			gone, err := rescan(id)
			if err != nil {
				return err
			}
			if gone && !all {
				return nil
			}
		}
	}
}

// retryDelay is how long WatchStates waits before reading a domain again
// after its transaction kept conflicting.
const retryDelay = 20 * time.Millisecond

// domainIDs lists the domains xenstore has (/local/domain/<id>).
func (t *Toolstack) domainIDs() ([]uint32, error) {
	names, err := t.s.Directory(xenif.NoTx, "/local/domain")
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing domains: %w", err)
	}
	var out []uint32
	for _, n := range numericNames(names, "") {
		if n < xenif.DomidFirstReserved {
			out = append(out, uint32(n))
		}
	}
	return out, nil
}
