package datapath

import (
	"sync"
	"sync/atomic"

	"github.com/govscsi/govscsi/backend/scsi"
)

// Addr is a guest-visible SCSI address on a vhost: the c:t:l of v-dev (the
// "host" part of v-dev never reaches the ring).
type Addr struct {
	Channel, Target, LUN uint16
}

// Entry is what an address resolves to.
type Entry struct {
	LUN scsi.LUN
	// Inline runs the LUN's commands on the ring goroutine. Use it only for
	// LUNs that answer in microseconds and never block (RAM disks, null
	// LUNs): it saves a goroutine hand-off per command, but while such a
	// command runs the ring is not serviced.
	Inline bool
}

// Resolver maps a request's address to a LUN. It is called for every
// request, concurrently with changes, so it must be cheap and safe.
type Resolver interface {
	Lookup(a Addr) (Entry, bool)
}

// Table is a Resolver that can be changed while connections use it (hot add
// and remove). Lookups are lock-free reads of an immutable map; changes copy
// the map. After Remove, call Conn.WaitIdle before closing the LUN.
type Table struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[Addr]Entry]
}

// Lookup implements Resolver.
func (t *Table) Lookup(a Addr) (Entry, bool) {
	m := t.m.Load()
	if m == nil {
		return Entry{}, false
	}
	e, ok := (*m)[a]
	return e, ok
}

// Set adds or replaces the entry for a.
func (t *Table) Set(a Addr, e Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.update(func(m map[Addr]Entry) { m[a] = e })
}

// Remove deletes a and returns what it held.
func (t *Table) Remove(a Addr) (Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.Lookup(a)
	if ok {
		t.update(func(m map[Addr]Entry) { delete(m, a) })
	}
	return e, ok
}

// Len is the number of addresses.
func (t *Table) Len() int {
	if m := t.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}

func (t *Table) update(f func(map[Addr]Entry)) {
	old := t.m.Load()
	n := make(map[Addr]Entry)
	if old != nil {
		for k, v := range *old {
			n[k] = v
		}
	}
	f(n)
	t.m.Store(&n)
}
