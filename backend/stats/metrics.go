package stats

import "sort"

// LUNMetrics is one LUN's cumulative counters and latency distribution,
// for exporters (backend/metrics): unlike LUNs it computes no rate and so
// leaves the rate window of `xl-vscsi stats` alone.
type LUNMetrics struct {
	Meta
	Reads, Writes, Others uint64
	ReadBytes, WriteBytes uint64
	Errors                uint64
	InFlight              int64
	Latency               LatencyHistogram
}

// LatencyHistogram is a latency distribution as cumulative buckets: the
// sampled commands (one in LatencySample) whose latency was at most
// UpperNS. Bounds are 2^k-1 ns for k = histMinExp..histMaxExp (1 µs to
// about 34 s), exact, since the log-linear histogram has a bucket edge at
// every power of two; Count and SumNS cover every sampled command, those
// above the last bound too.
type LatencyHistogram struct {
	Buckets []HistogramBucket
	Count   uint64
	SumNS   uint64
}

// HistogramBucket is one cumulative bucket.
type HistogramBucket struct {
	UpperNS    uint64
	Cumulative uint64
}

// The exported bucket bounds: 2^10-1 ns (about 1 µs) to 2^35-1 ns (about
// 34 s), one per power of two.
const (
	histMinExp = 10
	histMaxExp = 35
)

// exportHistogram folds the log-linear counts into the exported buckets.
func exportHistogram(hist *[nBuckets]uint64, sum uint64) LatencyHistogram {
	h := LatencyHistogram{SumNS: sum, Buckets: make([]HistogramBucket, 0, histMaxExp-histMinExp+1)}
	var cum uint64
	b := 0
	for e := histMinExp; e <= histMaxExp; e++ {
		upper := uint64(1)<<e - 1
		for ; b < nBuckets && bucketUpper(b) <= upper; b++ {
			cum += hist[b]
		}
		h.Buckets = append(h.Buckets, HistogramBucket{UpperNS: upper, Cumulative: cum})
	}
	for ; b < nBuckets; b++ {
		cum += hist[b]
	}
	h.Count = cum
	return h
}

// Metrics returns every registered LUN's counters, sorted as LUNs.
func (r *Registry) Metrics() []LUNMetrics {
	r.mu.Lock()
	es := make([]*entry, 0, len(r.entries))
	for e := range r.entries {
		es = append(es, e)
	}
	r.mu.Unlock()
	out := make([]LUNMetrics, 0, len(es))
	for _, e := range es {
		c := &e.c
		m := LUNMetrics{Meta: e.meta, Reads: c.reads.Load(), Writes: c.writes.Load(), Others: c.others.Load(),
			ReadBytes: c.readBytes.Load(), WriteBytes: c.writeBytes.Load(), Errors: c.errors.Load(),
			InFlight: c.inflight.Load()}
		var hist [nBuckets]uint64
		// The sum is read before the counts: a command recorded in
		// between adds to a count but not to the sum, never the reverse
		// (Prometheus tolerates neither much, a sum without its count
		// less).
		sum := c.latSum.Load()
		for i := range hist {
			hist[i] = c.hist[i].Load()
		}
		m.Latency = exportHistogram(&hist, sum)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.less(out[j].Meta) })
	return out
}
