package metrics

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/govscsi/govscsi/backend/stats"
)

// parse reads exposition text with Prometheus's own parser (the one
// node_exporter's textfile collector and the Prometheus server use).
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the text: %v\n%s", err, text)
	}
	return fams
}

// sample finds the metric of family name whose labels include want.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s: no sample with %v", name, want)
	return nil
}

// hostile is a p-dev with everything the format must escape, and more.
const hostile = "file:/srv/a \"b\" \\c\nd\u00e9\u2603"

func testData() Data {
	h := stats.LatencyHistogram{Count: 7, SumNS: 123456789}
	for i, e := 0, 10; e <= 35; i, e = i+1, e+1 {
		c := uint64(0)
		if e >= 12 {
			c = 5
		}
		if e >= 20 {
			c = 6
		}
		h.Buckets = append(h.Buckets, stats.HistogramBucket{UpperNS: 1<<e - 1, Cumulative: c})
	}
	return Data{BackendType: "vscsiu", Domid: 0, Uptime: 90 * time.Second,
		LUNs: []stats.LUNMetrics{
			{Meta: stats.Meta{Domid: 5, Vhost: "0", Dev: "dev-0", Addr: "0:0:0", Pdev: hostile},
				Reads: 10, Writes: 20, Others: 3, ReadBytes: 4096, WriteBytes: 1 << 40, Errors: 2, InFlight: 4, Latency: h},
			{Meta: stats.Meta{Domid: 5, Vhost: "0", Dev: "dev-1", Addr: "0:1:0", Pdev: "ram:64M"}, Latency: stats.LatencyHistogram{Buckets: h.Buckets[:0]}},
		},
		Vhosts: []stats.VhostStatus{{Domid: 5, Vhost: "0", State: 4, Frontend: 4, Connected: true,
			Requests: 100, Responses: 99, Rejected: 1, Notifies: 50, Events: 60, Replayed: 2}},
	}
}

func TestWriteParses(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, testData()); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, buf.Bytes())
	types := map[string]dto.MetricType{
		"govscsi_backend_info": dto.MetricType_GAUGE, "govscsi_backend_uptime_seconds": dto.MetricType_GAUGE,
		"govscsi_lun_commands_total": dto.MetricType_COUNTER, "govscsi_lun_bytes_total": dto.MetricType_COUNTER,
		"govscsi_lun_errors_total": dto.MetricType_COUNTER, "govscsi_lun_in_flight": dto.MetricType_GAUGE,
		"govscsi_lun_latency_seconds": dto.MetricType_HISTOGRAM,
		"govscsi_vhost_state":         dto.MetricType_GAUGE, "govscsi_vhost_frontend_state": dto.MetricType_GAUGE,
		"govscsi_vhost_connected":           dto.MetricType_GAUGE,
		"govscsi_vhost_ring_requests_total": dto.MetricType_COUNTER, "govscsi_vhost_ring_responses_total": dto.MetricType_COUNTER,
		"govscsi_vhost_ring_rejected_total": dto.MetricType_COUNTER, "govscsi_vhost_ring_replayed_total": dto.MetricType_COUNTER,
		"govscsi_vhost_notifies_total": dto.MetricType_COUNTER, "govscsi_vhost_events_total": dto.MetricType_COUNTER,
	}
	for name, typ := range types {
		f := fams[name]
		if f == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s: type %v, want %v", name, f.GetType(), typ)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s: no HELP", name)
		}
	}
	if len(fams) != len(types) {
		t.Errorf("%d families, want %d", len(fams), len(types))
	}

	lun0 := map[string]string{"domid": "5", "vhost": "0", "dev": "dev-0", "ctl": "0:0:0", "pdev": hostile}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range lun0 {
			m[a] = b
		}
		return m
	}
	for op, want := range map[string]float64{"read": 10, "write": 20, "other": 3} {
		if got := sample(t, fams, "govscsi_lun_commands_total", with("op", op)).GetCounter().GetValue(); got != want {
			t.Errorf("commands %s: %v, want %v", op, got, want)
		}
	}
	if got := sample(t, fams, "govscsi_lun_bytes_total", with("op", "write")).GetCounter().GetValue(); got != 1<<40 {
		t.Errorf("bytes written: %v", got)
	}
	if got := sample(t, fams, "govscsi_lun_errors_total", lun0).GetCounter().GetValue(); got != 2 {
		t.Errorf("errors: %v", got)
	}
	if got := sample(t, fams, "govscsi_lun_in_flight", lun0).GetGauge().GetValue(); got != 4 {
		t.Errorf("in flight: %v", got)
	}
	hist := sample(t, fams, "govscsi_lun_latency_seconds", lun0).GetHistogram()
	if hist.GetSampleCount() != 7 || math.Abs(hist.GetSampleSum()-0.123456789) > 1e-12 {
		t.Errorf("histogram count %d sum %v", hist.GetSampleCount(), hist.GetSampleSum())
	}
	if len(hist.Bucket) != 27 || !math.IsInf(hist.Bucket[26].GetUpperBound(), 1) || hist.Bucket[26].GetCumulativeCount() != 7 {
		t.Errorf("want 26 finite buckets and +Inf with every sample: %v", hist.Bucket)
	}
	for _, b := range hist.Bucket[:26] {
		ns := math.Round(b.GetUpperBound() * 1e9)
		want := uint64(0)
		switch {
		case ns >= 1<<20-1:
			want = 6
		case ns >= 1<<12-1:
			want = 5
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("le %v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
		if n := uint64(ns) + 1; n&(n-1) != 0 {
			t.Errorf("le %v is not 2^k-1 ns", b.GetUpperBound())
		}
	}
	empty := sample(t, fams, "govscsi_lun_latency_seconds", map[string]string{"pdev": "ram:64M"}).GetHistogram()
	if empty.GetSampleCount() != 0 {
		t.Errorf("a LUN without samples: %v", empty)
	}
	vh := map[string]string{"domid": "5", "vhost": "0"}
	for name, want := range map[string]float64{"govscsi_vhost_ring_requests_total": 100, "govscsi_vhost_ring_rejected_total": 1,
		"govscsi_vhost_notifies_total": 50, "govscsi_vhost_events_total": 60, "govscsi_vhost_ring_replayed_total": 2} {
		if got := sample(t, fams, name, vh).GetCounter().GetValue(); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if got := sample(t, fams, "govscsi_vhost_connected", vh).GetGauge().GetValue(); got != 1 {
		t.Errorf("connected: %v", got)
	}
	if got := sample(t, fams, "govscsi_backend_info", map[string]string{"backend_type": "vscsiu"}).GetGauge().GetValue(); got != 1 {
		t.Errorf("info: %v", got)
	}
}

// An idle backend (no LUN, no vhost) still gives a valid exposition.
func TestWriteIdle(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, Data{BackendType: "vscsiu"}); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, buf.Bytes())
	if len(fams) != 2 || fams["govscsi_backend_uptime_seconds"] == nil {
		t.Errorf("idle families: %v", fams)
	}
}

func TestTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "govscsi.prom")
	n := 0
	tf := &Textfile{Path: path, Interval: 20 * time.Millisecond, Source: func() Data {
		n++
		d := testData()
		d.Uptime = time.Duration(n) * time.Second
		return d
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tf.Run(ctx) }()
	var first, later float64
	for i := 0; i < 200; i++ {
		if b, err := os.ReadFile(path); err == nil {
			v := parse(t, b)["govscsi_backend_uptime_seconds"].Metric[0].GetGauge().GetValue()
			if first == 0 {
				first = v
			} else if v > first {
				later = v
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if first == 0 || later <= first {
		t.Fatalf("the textfile was not rewritten: first %v later %v", first, later)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("textfile mode: %v %v", fi, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in the directory after Run: %v (the textfile and temporaries go)", ents)
	}
}

// A directory that cannot be written is logged and retried, not fatal.
func TestTextfileUnwritable(t *testing.T) {
	tf := &Textfile{Path: filepath.Join(t.TempDir(), "missing", "govscsi.prom"), Interval: 10 * time.Millisecond,
		Source: func() Data { return Data{} }}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tf.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCheckListen(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9863", "[::1]:9863", "localhost:9863", "127.1.2.3:0"} {
		if err := CheckListen(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, word := range map[string]string{"0.0.0.0:9863": "loopback", ":9863": "loopback", "192.168.1.5:9863": "loopback",
		"[::]:9863": "loopback", "127.0.0.1": "host:port", "127.0.0.1:http-alt-nope": "port", "example.com:80": "loopback"} {
		if err := CheckListen(bad); err == nil || !strings.Contains(err.Error(), word) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v (want an error naming it and %q)", bad, err, word)
		}
	}
}

func TestServe(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, testData, nil) }()
	url := "http://" + l.Addr().String() + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
		t.Errorf("GET: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if fmt := expfmt.ResponseFormat(resp.Header); fmt.FormatType() != expfmt.TypeTextPlain {
		t.Errorf("content type read by Prometheus as %v", fmt)
	}
	if parse(t, body)["govscsi_lun_commands_total"] == nil {
		t.Errorf("no LUN counters over HTTP")
	}
	resp, err = http.Post(url, "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST: %s", resp.Status)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("the endpoint still answers after Serve returned")
	}
}
