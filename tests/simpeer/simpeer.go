// Package simpeer plays the two peers of a vscsi connection over a
// xenstore connection, for toolstack tests: Backend follows Linux
// xen-scsiback's state machine and Frontend xen-scsifront's, as
// protocol.md §2.1-2.2 describes them (vhost states, the ADD_OR_DEL /
// UPDATEDEV backend passes, the ADD / DEL frontend passes). No rings or
// event channels exist: only the xenstore side is played.
//
// Failure knobs: Backend.Resolvable (a p-dev outside the set goes to dev
// state 6), Backend.Delay (a slow backend), Frontend.FailAdd (the guest
// cannot add a LUN, as with scsi_mod.scan=none); "scsifront not loaded"
// is simply not running a Frontend; "the guest vanished" is the test
// removing /local/domain/<domid> (and releasing the domain).
//
// Like xenbus, both peers are edge-triggered on the other end's state
// value and re-read everything they need on each watch event.
package simpeer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

func readInt(s xenif.Store, p string) (int, bool) {
	v, err := s.Read(xenif.NoTx, p)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	return n, true
}

func exists(s xenif.Store, p string) bool {
	_, err := s.Read(xenif.NoTx, p)
	return err == nil
}

func devNames(s xenif.Store, dir string) []string {
	l, err := s.Directory(xenif.NoTx, dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range l {
		if strings.HasPrefix(n, "dev-") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// ctl is the c:t:l of a v-dev (the backend and frontend ignore the host).
func ctl(vdev string) (string, bool) {
	f := strings.Split(vdev, ":")
	if len(f) != 4 {
		return "", false
	}
	for _, x := range f {
		if _, err := strconv.ParseUint(x, 10, 32); err != nil {
			return "", false
		}
	}
	return f[1] + ":" + f[2] + ":" + f[3], true
}

// Backend plays xen-scsiback for every vhost under
// /local/domain/<Domid>/backend/<Type>.
type Backend struct {
	Store xenif.Store // a connection acting as the backend domain
	Domid uint32      // the backend domain (0)
	// Type is the backend type directory served (default "vscsi"; the
	// userspace backend's is "vscsiu").
	Type string
	// Resolvable reports whether a p-dev names a usable device; nil
	// accepts all.
	Resolvable func(pdev string) bool
	// DevErrors makes the backend also write dev-N/error when it refuses
	// a device (what govscsi's own backend does, P5; Linux does not).
	DevErrors bool
	// Delay is slept before every state change (a slow backend).
	Delay time.Duration
	// Log, if set, receives one line per action.
	Log func(format string, a ...any)

	vhosts map[string]*beVHost
}

type beVHost struct {
	be, fe    string
	domid     string
	vhost     string
	lastFE    int
	connected bool
	dead      bool // unregistered: never probed again while the node exists
	trans     map[string]string
	watched   string
}

func (b *Backend) typ() string {
	if b.Type == "" {
		return "vscsi"
	}
	return b.Type
}

func (b *Backend) logf(format string, a ...any) {
	if b.Log != nil {
		b.Log("simpeer backend: "+format, a...)
	}
}

func (b *Backend) sleep(ctx context.Context) {
	if b.Delay > 0 {
		select {
		case <-time.After(b.Delay):
		case <-ctx.Done():
		}
	}
}

func (b *Backend) write(p, v string) {
	if err := b.Store.Write(xenif.NoTx, p, v); err != nil {
		b.logf("write %s: %v", p, err)
	}
}

// Run plays the backend until ctx ends or the store closes.
func (b *Backend) Run(ctx context.Context) error {
	root := fmt.Sprintf("/local/domain/%d/backend/%s", b.Domid, b.typ())
	b.vhosts = map[string]*beVHost{}
	if err := b.Store.Watch(root, "simpeer-be"); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-b.Store.Events():
			if !ok {
				return xenif.ErrStoreClosed
			}
			b.reconcile(ctx, root)
		}
	}
}

func (b *Backend) reconcile(ctx context.Context, root string) {
	s := b.Store
	seen := map[string]bool{}
	doms, _ := s.Directory(xenif.NoTx, root)
	for _, dom := range doms {
		vhs, _ := s.Directory(xenif.NoTx, root+"/"+dom)
		for _, vh := range vhs {
			key := dom + "/" + vh
			seen[key] = true
			be := root + "/" + key
			v := b.vhosts[key]
			if v == nil {
				fe, err1 := s.Read(xenif.NoTx, be+"/frontend")
				_, err2 := s.Read(xenif.NoTx, be+"/frontend-id")
				if err1 != nil || err2 != nil || !exists(s, fe) {
					continue // the xenbus core does not probe yet
				}
				v = &beVHost{be: be, fe: fe, domid: dom, vhost: vh, lastFE: -1, trans: map[string]string{}}
				b.vhosts[key] = v
				b.sleep(ctx)
				b.write(be+"/feature-sg-grant", "128")
				b.write(be+"/state", strconv.Itoa(xenif.StateInitWait))
				b.logf("probed %s", be)
				v.watched = fe + "/state"
				if err := s.Watch(v.watched, "simpeer-be-fe"); err != nil {
					b.logf("watch %s: %v", v.watched, err)
				}
			}
			if v.dead {
				continue
			}
			b.frontendChanged(ctx, v)
		}
	}
	for key, v := range b.vhosts {
		if !seen[key] {
			if v.watched != "" {
				_ = s.Unwatch(v.watched, "simpeer-be-fe")
			}
			delete(b.vhosts, key)
		}
	}
}

func (b *Backend) fatal(v *beVHost, msg string) {
	p := fmt.Sprintf("/local/domain/%d/error/backend/%s/%s/%s/error", b.Domid, b.typ(), v.domid, v.vhost)
	b.write(p, msg)
	b.write(v.be+"/state", strconv.Itoa(xenif.StateClosing))
}

func (b *Backend) frontendChanged(ctx context.Context, v *beVHost) {
	s := b.Store
	fs, ok := readInt(s, v.fe+"/state")
	if !ok {
		fs = xenif.StateUnknown
	}
	if fs == v.lastFE {
		return
	}
	v.lastFE = fs
	b.logf("%s: frontend state %d", v.be, fs)
	switch fs {
	case xenif.StateUnknown:
		// Frontend gone: unregister; the xenbus core writes Closed.
		v.dead, v.connected = true, false
		v.trans = map[string]string{}
		if exists(s, v.be) {
			b.sleep(ctx)
			b.write(v.be+"/state", strconv.Itoa(xenif.StateClosed))
		}
	case xenif.StateInitialised:
		_, ok1 := readInt(s, v.fe+"/ring-ref")
		_, ok2 := readInt(s, v.fe+"/event-channel")
		if !ok1 || !ok2 {
			b.fatal(v, "reading ring-ref and event-channel")
			return
		}
		v.connected = true
		b.addOrDel(ctx, v)
		b.sleep(ctx)
		b.write(v.be+"/state", strconv.Itoa(xenif.StateConnected))
	case xenif.StateConnected:
		for _, n := range devNames(s, v.be+"/vscsi-devs") {
			if st, _ := readInt(s, v.be+"/vscsi-devs/"+n+"/state"); st == xenif.StateInitialised {
				b.write(v.be+"/vscsi-devs/"+n+"/state", strconv.Itoa(xenif.StateConnected))
			}
		}
		if st, _ := readInt(s, v.be+"/state"); st != xenif.StateConnected {
			b.sleep(ctx)
			b.write(v.be+"/state", strconv.Itoa(xenif.StateConnected))
		}
	case xenif.StateClosing:
		if v.connected {
			v.connected = false
		}
		b.sleep(ctx)
		b.write(v.be+"/state", strconv.Itoa(xenif.StateClosing))
	case xenif.StateClosed:
		b.sleep(ctx)
		b.write(v.be+"/state", strconv.Itoa(xenif.StateClosed))
		if on, _ := s.Read(xenif.NoTx, v.be+"/online"); on != "1" {
			v.dead = true
			v.trans = map[string]string{}
		}
	case xenif.StateReconfiguring:
		b.addOrDel(ctx, v)
		b.sleep(ctx)
		b.write(v.be+"/state", strconv.Itoa(xenif.StateReconfigured))
	case xenif.StateInitWait, xenif.StateReconfigured:
		b.fatal(v, fmt.Sprintf("saw state %d at frontend", fs))
	}
}

// addOrDel is scsiback's ADD_OR_DEL device pass.
func (b *Backend) addOrDel(ctx context.Context, v *beVHost) {
	s := b.Store
	for _, n := range devNames(s, v.be+"/vscsi-devs") {
		dp := v.be + "/vscsi-devs/" + n
		st, ok := readInt(s, dp+"/state")
		if !ok {
			continue
		}
		refuse := func(why string) {
			b.write(dp+"/state", strconv.Itoa(xenif.StateClosed))
			if b.DevErrors {
				b.write(dp+"/error", why)
			}
			b.logf("%s refused: %s", dp, why)
		}
		pdev, err := s.Read(xenif.NoTx, dp+"/p-dev")
		if err != nil {
			refuse("no p-dev")
			continue
		}
		vdev, _ := s.Read(xenif.NoTx, dp+"/v-dev")
		key, ok := ctl(vdev)
		if !ok {
			refuse("bad v-dev " + strconv.Quote(vdev))
			continue
		}
		switch st {
		case xenif.StateInitialising:
			if b.Resolvable != nil && !b.Resolvable(pdev) {
				refuse(fmt.Sprintf("p-dev %s not found", pdev))
				continue
			}
			if _, used := v.trans[key]; used {
				refuse("Virtual ID is already used")
				continue
			}
			v.trans[key] = pdev
			b.write(dp+"/state", strconv.Itoa(xenif.StateInitialised))
		case xenif.StateConnected:
			if _, have := v.trans[key]; !have && (b.Resolvable == nil || b.Resolvable(pdev)) {
				v.trans[key] = pdev
			}
		case xenif.StateClosing:
			if _, have := v.trans[key]; have {
				delete(v.trans, key)
				b.write(dp+"/state", strconv.Itoa(xenif.StateClosed))
			}
		}
	}
}

// Frontend plays xen-scsifront for the vhosts of one guest.
type Frontend struct {
	Store xenif.Store // a connection acting as the guest
	Domid uint32
	// FailAdd reports whether scsi_add_device fails for a v-dev (FE dev
	// state 6); nil: every add succeeds.
	FailAdd func(vdev string) bool
	// RingRef and EventChannel are the values written at probe (default
	// "8" and "9"; there is no real ring).
	RingRef, EventChannel string
	// Resumed plays a frontend resuming after a save or migration: the
	// guest still has its LUNs, so the first time the backend connects it
	// runs scsifront's READD pass (frontend dev state 4 only for devices
	// whose backend state is already 4) instead of the ADD pass, as
	// scsifront does while info->pause is set.
	Resumed bool
	Delay   time.Duration
	Log     func(format string, a ...any)

	vhosts map[string]*feVHost
}

type feVHost struct {
	fe, be  string
	lastBE  int
	resumed bool            // READD pending (Frontend.Resumed)
	added   map[string]bool // dev-N names the guest has
	watched string
}

func (f *Frontend) logf(format string, a ...any) {
	if f.Log != nil {
		f.Log("simpeer frontend: "+format, a...)
	}
}

func (f *Frontend) write(p, v string) {
	if err := f.Store.Write(xenif.NoTx, p, v); err != nil {
		f.logf("write %s: %v", p, err)
	}
}

func (f *Frontend) sleep(ctx context.Context) {
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-ctx.Done():
		}
	}
}

// Run plays the frontend until ctx ends or the store closes.
func (f *Frontend) Run(ctx context.Context) error {
	root := fmt.Sprintf("/local/domain/%d/device/vscsi", f.Domid)
	f.vhosts = map[string]*feVHost{}
	if err := f.Store.Watch(root, "simpeer-fe"); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-f.Store.Events():
			if !ok {
				return xenif.ErrStoreClosed
			}
			f.reconcile(ctx, root)
		}
	}
}

func (f *Frontend) reconcile(ctx context.Context, root string) {
	s := f.Store
	vhs, _ := s.Directory(xenif.NoTx, root)
	seen := map[string]bool{}
	for _, vh := range vhs {
		seen[vh] = true
		fe := root + "/" + vh
		v := f.vhosts[vh]
		if v == nil {
			be, err1 := s.Read(xenif.NoTx, fe+"/backend")
			_, err2 := s.Read(xenif.NoTx, fe+"/backend-id")
			if err1 != nil || err2 != nil {
				continue
			}
			v = &feVHost{fe: fe, be: be, lastBE: -1, added: map[string]bool{}, resumed: f.Resumed}
			f.vhosts[vh] = v
			f.sleep(ctx)
			err := xenif.Transact(s, 10, func(tx xenif.Tx) error {
				if err := s.Write(tx, fe+"/ring-ref", def(f.RingRef, "8")); err != nil {
					return err
				}
				return s.Write(tx, fe+"/event-channel", def(f.EventChannel, "9"))
			})
			if err != nil {
				f.logf("probe %s: %v", fe, err)
			}
			f.write(fe+"/state", strconv.Itoa(xenif.StateInitialised))
			f.logf("probed %s", fe)
			v.watched = be + "/state"
			if err := s.Watch(v.watched, "simpeer-fe-be"); err != nil {
				f.logf("watch %s: %v", v.watched, err)
			}
		}
		f.backendChanged(ctx, v)
	}
	for vh, v := range f.vhosts {
		if !seen[vh] {
			_ = s.Unwatch(v.watched, "simpeer-fe-be")
			delete(f.vhosts, vh)
		}
	}
}

func (f *Frontend) backendChanged(ctx context.Context, v *feVHost) {
	s := f.Store
	bs, ok := readInt(s, v.be+"/state")
	if !ok {
		bs = xenif.StateUnknown
	}
	if bs == v.lastBE {
		return
	}
	v.lastBE = bs
	own, _ := readInt(s, v.fe+"/state")
	f.logf("%s: backend state %d (own %d)", v.fe, bs, own)
	switch bs {
	case xenif.StateConnected:
		if v.resumed {
			v.resumed = false
			for _, n := range devNames(s, v.be+"/vscsi-devs") {
				if st, _ := readInt(s, v.be+"/vscsi-devs/"+n+"/state"); st == xenif.StateConnected {
					f.write(v.fe+"/vscsi-devs/"+n+"/state", strconv.Itoa(xenif.StateConnected))
				}
				v.added[n] = true // the guest kept every LUN it had
			}
			f.sleep(ctx)
			f.write(v.fe+"/state", strconv.Itoa(xenif.StateConnected))
			return
		}
		if own == xenif.StateInitialised {
			f.addPass(ctx, v)
		}
		if own != xenif.StateConnected {
			f.sleep(ctx)
			f.write(v.fe+"/state", strconv.Itoa(xenif.StateConnected))
		}
	case xenif.StateClosing:
		f.closed(ctx, v)
	case xenif.StateClosed:
		if own != xenif.StateClosed {
			f.closed(ctx, v)
		}
	case xenif.StateReconfiguring:
		for _, n := range devNames(s, v.be+"/vscsi-devs") {
			if st, _ := readInt(s, v.be+"/vscsi-devs/"+n+"/state"); st == xenif.StateClosing && v.added[n] {
				delete(v.added, n)
				f.write(v.fe+"/vscsi-devs/"+n+"/state", strconv.Itoa(xenif.StateClosed))
			}
		}
		f.sleep(ctx)
		f.write(v.fe+"/state", strconv.Itoa(xenif.StateReconfiguring))
	case xenif.StateReconfigured:
		f.addPass(ctx, v)
		f.sleep(ctx)
		f.write(v.fe+"/state", strconv.Itoa(xenif.StateConnected))
	}
}

func (f *Frontend) closed(ctx context.Context, v *feVHost) {
	for n := range v.added {
		delete(v.added, n)
	}
	f.sleep(ctx)
	f.write(v.fe+"/state", strconv.Itoa(xenif.StateClosed))
}

// addPass is scsifront's ADD pass: every backend dev in state 3 is added.
func (f *Frontend) addPass(ctx context.Context, v *feVHost) {
	s := f.Store
	for _, n := range devNames(s, v.be+"/vscsi-devs") {
		dp := v.be + "/vscsi-devs/" + n
		if st, _ := readInt(s, dp+"/state"); st != xenif.StateInitialised || v.added[n] {
			continue
		}
		vdev, _ := s.Read(xenif.NoTx, dp+"/v-dev")
		if f.FailAdd != nil && f.FailAdd(vdev) {
			f.write(v.fe+"/vscsi-devs/"+n+"/state", strconv.Itoa(xenif.StateClosed))
			continue
		}
		v.added[n] = true
		f.write(v.fe+"/vscsi-devs/"+n+"/state", strconv.Itoa(xenif.StateConnected))
	}
}

func def(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Start runs p (a *Backend or *Frontend) on a goroutine and returns a stop
// function that ends it and waits for it.
func Start(run func(context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	return func() error {
		cancel()
		err := <-done
		if errors.Is(err, xenif.ErrStoreClosed) || errors.Is(err, syscall.EPIPE) {
			return nil
		}
		return err
	}
}
