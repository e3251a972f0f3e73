package stats

import (
	"testing"

	"github.com/govscsi/govscsi/backend/scsi"
)

// The exported buckets are exact: a latency of 2^k-1 ns counts in the
// bucket bounded by it, 2^k ns in the next; Count and SumNS include what
// lies above the last bound.
func TestMetricsHistogramExact(t *testing.T) {
	r := NewRegistry()
	l := r.Wrap(Meta{Domid: 3, Vhost: "0", Dev: "dev-0", Addr: "0:0:0", Pdev: "ram:1M"}, &fakeLUN{})
	defer l.Close()
	var e *entry
	for x := range r.entries {
		e = x
	}
	obs := []uint64{999, 1023, 1024, 5000, 40e9}
	var sum uint64
	for _, ns := range obs {
		e.c.hist[bucket(ns)].Add(1)
		e.c.latSum.Add(ns)
		sum += ns
	}
	ms := r.Metrics()
	if len(ms) != 1 {
		t.Fatalf("%d LUNs", len(ms))
	}
	h := ms[0].Latency
	if h.Count != uint64(len(obs)) || h.SumNS != sum {
		t.Errorf("count %d sum %d, want %d %d", h.Count, h.SumNS, len(obs), sum)
	}
	want := map[uint64]uint64{1023: 2, 2047: 3, 4095: 3, 8191: 4, 1<<35 - 1: 4}
	var prev uint64
	for i, b := range h.Buckets {
		if b.Cumulative < prev {
			t.Errorf("bucket %d (%d ns) not cumulative: %d after %d", i, b.UpperNS, b.Cumulative, prev)
		}
		prev = b.Cumulative
		if b.UpperNS&(b.UpperNS+1) != 0 {
			t.Errorf("bucket bound %d ns is not 2^k-1", b.UpperNS)
		}
		if w, ok := want[b.UpperNS]; ok && b.Cumulative != w {
			t.Errorf("le %d ns: %d, want %d", b.UpperNS, b.Cumulative, w)
		}
	}
	if len(h.Buckets) != histMaxExp-histMinExp+1 || h.Buckets[0].UpperNS != 1023 {
		t.Errorf("buckets %+v", h.Buckets)
	}
}

// Metrics leaves the rate window of LUNs (xl-vscsi stats) alone.
func TestMetricsKeepsRates(t *testing.T) {
	r := NewRegistry()
	l := r.Wrap(Meta{Domid: 1, Vhost: "0", Dev: "dev-0"}, &fakeLUN{})
	defer l.Close()
	var e *entry
	for x := range r.entries {
		e = x
	}
	at := e.lastAt
	for i := 0; i < 10; i++ {
		l.Execute(&scsi.Command{Dir: scsi.DirFromDevice, Data: make([]byte, 512)}, &scsi.Result{})
	}
	m := r.Metrics()
	if m[0].Reads != 10 || m[0].ReadBytes != 5120 || m[0].Latency.Count != 2 {
		t.Errorf("metrics %+v", m[0])
	}
	if e.lastAt != at || e.lastCmds != 0 {
		t.Errorf("Metrics moved the rate window")
	}
}
