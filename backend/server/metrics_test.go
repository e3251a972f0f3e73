package server

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestMetricsConfig(t *testing.T) {
	c, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Textfile != "" || c.Metrics.Listen != "" {
		t.Errorf("metrics must be off by default: %+v", c.Metrics)
	}
	c, err = ParseConfig([]byte("metrics:\n  textfile: /var/lib/prometheus/node-exporter/govscsi.prom\n  listen: 127.0.0.1:9863\n"))
	if err != nil || c.Metrics.Interval != DefaultMetricsInterval {
		t.Errorf("metrics config: %+v %v", c.Metrics, err)
	}
	for yaml, word := range map[string]string{
		"metrics: {textfile: relative.prom}":          "relative.prom",
		"metrics: {textfile: /var/lib/x/govscsi.txt}": ".prom",
		"metrics: {textfile: /a/../b.prom}":           "/a/../b.prom",
		"metrics: {interval: 100ms}":                  "metrics.interval",
		"metrics: {interval: soon}":                   "soon",
		"metrics: {listen: \"0.0.0.0:9863\"}":         "0.0.0.0:9863",
		"metrics: {listen: \"192.168.0.1:9863\"}":     "loopback",
		"metrics: {listen: localhost}":                "host:port",
		"metrics: {textfil: /x.prom}":                 "metrics.textfil",
	} {
		if _, err := ParseConfig([]byte(yaml)); err == nil || !strings.Contains(err.Error(), word) {
			t.Errorf("%s: %v (want an error naming %q)", yaml, err, word)
		}
	}
}

func parseProm(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Prometheus's parser: %v\n%s", err, b)
	}
	return f
}

func counter(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// checkMetrics: after one WRITE(10) and one READ(10) of a page on pdev,
// the HTTP endpoint and the textfile both say so, as Prometheus parses
// them.
func checkMetrics(t *testing.T, s *Server, promFile, pdev string) {
	t.Helper()
	check := func(src string, fams map[string]*dto.MetricFamily) bool {
		lun := map[string]string{"domid": "5", "vhost": "0", "dev": "dev-0", "ctl": "0:0:0", "pdev": pdev}
		with := func(k, v string) map[string]string {
			m := map[string]string{k: v}
			for a, b := range lun {
				m[a] = b
			}
			return m
		}
		want := []struct {
			name   string
			labels map[string]string
			value  float64
		}{
			{"govscsi_lun_commands_total", with("op", "write"), 1},
			{"govscsi_lun_commands_total", with("op", "read"), 1},
			{"govscsi_lun_bytes_total", with("op", "write"), 4096},
			{"govscsi_lun_bytes_total", with("op", "read"), 4096},
			{"govscsi_lun_errors_total", lun, 0},
			{"govscsi_lun_latency_seconds", lun, 1}, // the first command is timed
			{"govscsi_vhost_ring_requests_total", map[string]string{"domid": "5", "vhost": "0"}, 2},
			{"govscsi_vhost_ring_responses_total", map[string]string{"domid": "5", "vhost": "0"}, 2},
			{"govscsi_vhost_connected", map[string]string{"domid": "5", "vhost": "0"}, 1},
			{"govscsi_backend_info", map[string]string{"backend_type": "vscsiu", "domid": "0"}, 1},
		}
		ok := true
		for _, w := range want {
			if got, found := counter(fams, w.name, w.labels); !found || got != w.value {
				if src == "http" {
					t.Errorf("%s: %s%v = %v (found %v), want %v", src, w.name, w.labels, got, found, w.value)
				}
				ok = false
			}
		}
		return ok
	}
	resp, err := http.Get("http://" + s.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatalf("metrics endpoint: %v", err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body) //nolint:errcheck // parsed below
	resp.Body.Close()
	check("http", parseProm(t, body.Bytes()))
	// The textfile catches up within its interval (1 s here).
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(promFile)
		if err == nil && check("textfile", parseProm(t, b)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the textfile %s does not show the I/O after 5 s: %v\n%s", promFile, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkMetricsGone: a stopped backend leaves no textfile and no endpoint.
func checkMetricsGone(t *testing.T, s *Server, promFile string) {
	t.Helper()
	if _, err := os.Stat(promFile); err == nil {
		t.Errorf("the textfile %s is left after the backend stopped", promFile)
	}
	if _, err := http.Get("http://" + s.MetricsAddr() + "/metrics"); err == nil {
		t.Errorf("the metrics endpoint still answers after the backend stopped")
	}
}
