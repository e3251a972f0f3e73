// Package stats counts what every LUN of the userspace backend does (commands,
// bytes, errors, a latency histogram) and serves snapshots as JSON on a Unix
// socket; Client is the other end, for `xl-vscsi stats` and scripts.
//
// Counting costs a few atomic adds per command. Latency is timed on one
// command in LatencySample (two clock reads): in a Xen PV dom0 without a
// vDSO clock (the rig's, under QEMU) a clock read is a system call, 21 µs
// there, and timing every command was a tenth of the daemon's CPU. The
// histogram is log-linear (4 sub-buckets per power of two of nanoseconds),
// so percentiles are exact to within 25 %.
//
// Wire protocol (one request per connection): the client sends one JSON
// line {"op":"stats"}; the server answers with one JSON line, a Snapshot,
// or {"error":"..."}, and closes the connection.
package stats

import (
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govscsi/govscsi/backend/scsi"
)

// subBits is log2 of the sub-buckets per power of two.
const subBits = 2

const nBuckets = 64 << subBits

// counters are one LUN's cumulative numbers.
type counters struct {
	reads, writes, others atomic.Uint64
	readBytes, writeBytes atomic.Uint64
	errors                atomic.Uint64
	inflight              atomic.Int64
	seq                   atomic.Uint64 // commands started, for sampling
	hist                  [nBuckets]atomic.Uint64
	latSum                atomic.Uint64 // ns, of the commands in hist
}

// LatencySample: the first command of a LUN and then one in this many are
// timed for the latency histogram.
const LatencySample = 8

// bucket maps a latency in ns to its histogram bucket.
func bucket(ns uint64) int {
	if ns < 1<<subBits {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 // 2^e <= ns
	sub := (ns >> (e - subBits)) & (1<<subBits - 1)
	return (e-subBits+1)<<subBits + int(sub)
}

// bucketUpper is the largest latency (ns) that falls in bucket b.
func bucketUpper(b int) uint64 {
	if b < 1<<subBits {
		return uint64(b)
	}
	e := b>>subBits + subBits - 1
	sub := uint64(b & (1<<subBits - 1))
	lo := uint64(1)<<e + sub<<(e-subBits)
	return lo + uint64(1)<<(e-subBits) - 1
}

// Meta identifies a LUN in snapshots.
type Meta struct {
	Domid uint32 `json:"domid"`
	Vhost string `json:"vhost"`
	Dev   string `json:"dev"`
	Addr  string `json:"ctl"` // c:t:l as the guest sees it
	Pdev  string `json:"pdev"`
}

type entry struct {
	meta   Meta
	opened time.Time
	c      counters

	mu       sync.Mutex // guards the rate window
	lastAt   time.Time
	lastCmds uint64
	lastByte uint64
	iops     float64
	bps      float64
}

// Registry holds the counters of every open LUN.
type Registry struct {
	mu      sync.Mutex
	entries map[*entry]struct{}
	started time.Time
	now     func() time.Time
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{entries: map[*entry]struct{}{}, started: time.Now(), now: time.Now}
}

// Wrap returns l with counting added; closing the result unregisters it.
// LUNs that take part in task management (scsi.TaskManagement) keep doing
// so through the wrapper.
func (r *Registry) Wrap(m Meta, l scsi.LUN) scsi.LUN {
	e := &entry{meta: m, opened: r.now()}
	e.lastAt = e.opened
	r.mu.Lock()
	r.entries[e] = struct{}{}
	r.mu.Unlock()
	w := &countingLUN{inner: l, e: e, r: r}
	if tm, ok := l.(scsi.TaskManagement); ok {
		return &countingTMLUN{countingLUN: w, tm: tm}
	}
	return w
}

type countingLUN struct {
	inner scsi.LUN
	e     *entry
	r     *Registry
	once  sync.Once
}

func (w *countingLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	c := &w.e.c
	c.inflight.Add(1)
	if c.seq.Add(1)%LatencySample == 1 {
		start := time.Now()
		w.inner.Execute(cmd, res)
		ns := max(time.Since(start).Nanoseconds(), 0)
		c.hist[bucket(uint64(ns))].Add(1)
		c.latSum.Add(uint64(ns))
	} else {
		w.inner.Execute(cmd, res)
	}
	c.inflight.Add(-1)
	switch cmd.Dir {
	case scsi.DirFromDevice:
		c.reads.Add(1)
		c.readBytes.Add(uint64(max(res.DataLen, 0)))
	case scsi.DirToDevice:
		c.writes.Add(1)
		c.writeBytes.Add(uint64(len(cmd.Data)))
	default:
		c.others.Add(1)
	}
	if res.Status != 0 || res.Host != 0 {
		c.errors.Add(1)
	}
}

func (w *countingLUN) Close() error {
	w.once.Do(func() {
		w.r.mu.Lock()
		delete(w.r.entries, w.e)
		w.r.mu.Unlock()
	})
	return w.inner.Close()
}

type countingTMLUN struct {
	*countingLUN
	tm scsi.TaskManagement
}

func (w *countingTMLUN) Abort(tag uint64) bool { return w.tm.Abort(tag) }
func (w *countingTMLUN) Reset() error          { return w.tm.Reset() }

// LUNSnapshot is one LUN's numbers.
type LUNSnapshot struct {
	Meta
	Seconds    float64 `json:"seconds"` // since the LUN was opened
	Commands   uint64  `json:"commands"`
	Reads      uint64  `json:"reads"`
	Writes     uint64  `json:"writes"`
	Others     uint64  `json:"others"`
	ReadBytes  uint64  `json:"read_bytes"`
	WriteBytes uint64  `json:"write_bytes"`
	Errors     uint64  `json:"errors"` // CHECK CONDITION, BUSY, host errors...
	InFlight   int64   `json:"in_flight"`
	// IOPS and BytesPerSec are rates over the time since the previous
	// snapshot (at least one second; the lifetime average before that).
	IOPS        float64 `json:"iops"`
	BytesPerSec float64 `json:"bytes_per_sec"`
	// Latency percentiles of completed commands, microseconds.
	LatencyUS Percentiles `json:"latency_us"`
}

// Percentiles of a latency distribution, in microseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// Snapshot is what the stats endpoint returns.
type Snapshot struct {
	Time          time.Time     `json:"time"`
	UptimeSeconds float64       `json:"uptime_seconds"`
	Vhosts        []VhostStatus `json:"vhosts,omitempty"`
	LUNs          []LUNSnapshot `json:"luns"`
}

// VhostStatus is the state of one vhost (filled in by the server).
type VhostStatus struct {
	Domid     uint32 `json:"domid"`
	Vhost     string `json:"vhost"`
	State     int    `json:"state"`
	Frontend  int    `json:"frontend_state"`
	Connected bool   `json:"connected"`
	Error     string `json:"error,omitempty"`
	Requests  uint64 `json:"ring_requests"`
	Responses uint64 `json:"ring_responses"`
	Rejected  uint64 `json:"ring_rejected"`
	Notifies  uint64 `json:"ring_notifies"` // events sent to the frontend
	Events    uint64 `json:"ring_events"`   // events received from it
	Replayed  uint64 `json:"ring_replayed"` // requests run again from the in-flight journal
}

// LUNs returns a snapshot of every registered LUN, sorted by domid, vhost
// and address.
func (r *Registry) LUNs() []LUNSnapshot {
	now := r.now()
	r.mu.Lock()
	es := make([]*entry, 0, len(r.entries))
	for e := range r.entries {
		es = append(es, e)
	}
	r.mu.Unlock()
	out := make([]LUNSnapshot, 0, len(es))
	for _, e := range es {
		out = append(out, e.snapshot(now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.less(out[j].Meta) })
	return out
}

// less orders LUNs by domid, vhost and dev.
func (a Meta) less(b Meta) bool {
	if a.Domid != b.Domid {
		return a.Domid < b.Domid
	}
	if a.Vhost != b.Vhost {
		return a.Vhost < b.Vhost
	}
	return a.Dev < b.Dev
}

// Uptime is the time since the registry was created.
func (r *Registry) Uptime() time.Duration { return r.now().Sub(r.started) }

func (e *entry) snapshot(now time.Time) LUNSnapshot {
	c := &e.c
	s := LUNSnapshot{Meta: e.meta, Seconds: now.Sub(e.opened).Seconds(),
		Reads: c.reads.Load(), Writes: c.writes.Load(), Others: c.others.Load(),
		ReadBytes: c.readBytes.Load(), WriteBytes: c.writeBytes.Load(), Errors: c.errors.Load(),
		InFlight: c.inflight.Load()}
	s.Commands = s.Reads + s.Writes + s.Others
	bytes := s.ReadBytes + s.WriteBytes

	e.mu.Lock()
	if d := now.Sub(e.lastAt); d >= time.Second {
		e.iops = float64(s.Commands-e.lastCmds) / d.Seconds()
		e.bps = float64(bytes-e.lastByte) / d.Seconds()
		e.lastAt, e.lastCmds, e.lastByte = now, s.Commands, bytes
	} else if e.lastCmds == 0 && s.Seconds > 0 {
		e.iops = float64(s.Commands) / max(s.Seconds, 1e-9)
		e.bps = float64(bytes) / max(s.Seconds, 1e-9)
	}
	s.IOPS, s.BytesPerSec = e.iops, e.bps
	e.mu.Unlock()

	var hist [nBuckets]uint64
	var total uint64
	for i := range hist {
		hist[i] = c.hist[i].Load()
		total += hist[i]
	}
	s.LatencyUS = percentiles(&hist, total)
	return s
}

func percentiles(hist *[nBuckets]uint64, total uint64) Percentiles {
	if total == 0 {
		return Percentiles{}
	}
	at := func(q float64) float64 {
		rank := uint64(q*float64(total) + 0.5)
		if rank < 1 {
			rank = 1
		}
		var seen uint64
		for b, n := range hist {
			seen += n
			if seen >= rank {
				return float64(bucketUpper(b)) / 1000
			}
		}
		return 0
	}
	p := Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999)}
	for b := nBuckets - 1; b >= 0; b-- {
		if hist[b] > 0 {
			p.Max = float64(bucketUpper(b)) / 1000
			break
		}
	}
	return p
}
