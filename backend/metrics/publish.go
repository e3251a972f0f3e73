package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Textfile rewrites a node_exporter textfile-collector file (its
// --collector.textfile.directory; the name must end in .prom) every
// Interval: the text goes to a hidden temporary file in the same directory
// first and is renamed over the old one, so the collector never reads a
// half-written file. When Run ends the file is removed: a stopped daemon
// has no metrics, and stale ones would look like a quiet backend.
type Textfile struct {
	Path     string
	Interval time.Duration
	Source   func() Data
	Log      hclog.Logger
}

// Run writes at once, then every Interval, until ctx ends. A failed write
// is logged (once until it works again) and retried at the next interval:
// metrics never stop the backend.
func (t *Textfile) Run(ctx context.Context) error {
	log := t.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	tick := time.NewTicker(t.Interval)
	defer tick.Stop()
	failing := false
	for {
		if err := t.write(); err != nil {
			if !failing {
				log.Error("cannot write the metrics textfile; retrying every interval", "path", t.Path, "error", err)
			}
			failing = true
		} else if failing {
			log.Info("metrics textfile written again", "path", t.Path)
			failing = false
		}
		select {
		case <-ctx.Done():
			if err := os.Remove(t.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("cannot remove the metrics textfile", "path", t.Path, "error", err)
			}
			return nil
		case <-tick.C:
		}
	}
}

func (t *Textfile) write() error {
	var buf bytes.Buffer
	if err := Write(&buf, t.Source()); err != nil {
		return err
	}
	dir, base := filepath.Split(t.Path)
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up a failure
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), t.Path)
}

// CheckListen validates an HTTP listen address: host:port with a loopback
// host (127.0.0.0/8, ::1 or "localhost"), so the endpoint is never
// reachable from another machine (or a guest).
func CheckListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, such as 127.0.0.1:9863 (%v)", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || strings.TrimSpace(port) == "" {
		return fmt.Errorf("%q: bad port %q", addr, port)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: the host must be a loopback address (127.0.0.1, ::1 or localhost): the endpoint has no authentication", addr)
	}
	return nil
}

// Listen opens the HTTP endpoint's socket (after CheckListen).
func Listen(addr string) (net.Listener, error) {
	if err := CheckListen(addr); err != nil {
		return nil, fmt.Errorf("metrics listen %w", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %q: %w", addr, err)
	}
	return l, nil
}

// Serve answers GET /metrics on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, src func() Data, log hclog.Logger) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET", http.StatusMethodNotAllowed)
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, src()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		w.Write(buf.Bytes()) //nolint:errcheck // the scraper went away
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute, ErrorLog: log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return err // the listener failed
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close() //nolint:errcheck // a scrape still running after 2 s is cut
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
