package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/govscsi/govscsi/backend/metrics"
)

// MetricsConfig is the "metrics:" section: Prometheus text exposition
// (backend/metrics), off unless a textfile or a listen address is given.
type MetricsConfig struct {
	// Textfile is a node_exporter textfile-collector file the daemon
	// rewrites every Interval (absolute, ending in .prom, in the
	// collector's --collector.textfile.directory).
	Textfile string `yaml:"textfile"`
	// Interval between rewrites of Textfile (default 15s, at least 1s).
	Interval time.Duration `yaml:"interval"`
	// Listen serves GET /metrics on a loopback host:port (such as
	// 127.0.0.1:9863) for a Prometheus on the same host.
	Listen string `yaml:"listen"`
}

// DefaultMetricsInterval is how often the textfile is rewritten unless
// configured (node_exporter's default scrape is every 15 s too).
const DefaultMetricsInterval = 15 * time.Second

func (m *MetricsConfig) check() error {
	if m.Textfile != "" {
		if !filepath.IsAbs(m.Textfile) || strings.Contains(m.Textfile, "..") {
			return fmt.Errorf("config: metrics.textfile %q: want an absolute path without \"..\"", m.Textfile)
		}
		if filepath.Ext(m.Textfile) != ".prom" {
			return fmt.Errorf("config: metrics.textfile %q: the name must end in .prom (node_exporter's textfile collector reads only those)", m.Textfile)
		}
	}
	if m.Interval == 0 {
		m.Interval = DefaultMetricsInterval
	}
	if m.Interval < time.Second {
		return fmt.Errorf("config: metrics.interval %v: want at least 1s", m.Interval)
	}
	if m.Listen != "" {
		if err := metrics.CheckListen(m.Listen); err != nil {
			return fmt.Errorf("config: metrics.listen %w", err)
		}
	}
	return nil
}

// metricsData is one exposition's content. It reads counters only (no
// rate window moves: `xl-vscsi stats` keeps its own).
func (s *Server) metricsData() metrics.Data {
	return metrics.Data{BackendType: s.cfg.BackendType, Domid: s.domid, Uptime: s.stats.Uptime(),
		LUNs: s.stats.Metrics(), Vhosts: s.vhostStatuses()}
}

// MetricsText is the exposition as the configured outputs publish it (for
// tests and tools).
func (s *Server) MetricsText() (string, error) {
	var b strings.Builder
	err := metrics.Write(&b, s.metricsData())
	return b.String(), err
}

// MetricsAddr is the address the HTTP endpoint listens on ("" if none).
func (s *Server) MetricsAddr() string {
	a, _ := s.metricsAddr.Load().(string)
	return a
}

// startMetrics starts the configured outputs until ctx ends; wait returns
// once they stopped (the textfile removed, the listener closed). An
// unusable listen address is an error at once: the daemon refuses to
// start rather than run without the metrics it was told to serve.
func (s *Server) startMetrics(ctx context.Context) (wait func() error, err error) {
	var runs []chan error
	m := s.cfg.Metrics
	if m.Listen != "" {
		l, err := metrics.Listen(m.Listen)
		if err != nil {
			return nil, err
		}
		s.metricsAddr.Store(l.Addr().String())
		s.log.Info("metrics endpoint", "url", "http://"+l.Addr().String()+"/metrics")
		done := make(chan error, 1)
		go func() { done <- metrics.Serve(ctx, l, s.metricsData, s.log.Named("metrics")) }()
		runs = append(runs, done)
	}
	if m.Textfile != "" {
		s.log.Info("metrics textfile", "path", m.Textfile, "interval", m.Interval)
		tf := &metrics.Textfile{Path: m.Textfile, Interval: m.Interval, Source: s.metricsData, Log: s.log.Named("metrics")}
		done := make(chan error, 1)
		go func() { done <- tf.Run(ctx) }()
		runs = append(runs, done)
	}
	return func() error {
		var first error
		for _, d := range runs {
			if err := <-d; err != nil && first == nil {
				first = err
			}
		}
		return first
	}, nil
}
