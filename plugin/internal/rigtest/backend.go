package rigtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/server"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
)

// Backend is govscsi's REAL userspace backend (backend/server: xenbus
// state machine, lunconf, store, datapath) in the test process, on its
// own libxenstore connection (XENSTORED_PATH), with xenfake grants and
// event channels in place of /dev/xen.
type Backend struct {
	Server *server.Server
	Grants *xenfake.Grants
	Hub    *xenfake.EventHub
	Img    string // a 1 MiB image file in the backend's one allowed directory

	t       testing.TB
	cancel  context.CancelFunc
	runDone chan error
	store   *xs.Handle
}

// StartBackend starts the backend as dom0 with the configuration
// "domid: 0", allow_paths the directory of Img, then extra (YAML lines).
// The caller stops it with Stop, ordered against its peers' clean-ups.
func StartBackend(t testing.TB, extra string, log hclog.Logger) *Backend {
	t.Helper()
	b := &Backend{t: t, Grants: xenfake.NewGrants(), Hub: xenfake.NewEventHub(), runDone: make(chan error, 1)}
	dir := t.TempDir()
	b.Img = filepath.Join(dir, "disk.img")
	if err := os.WriteFile(b.Img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(extra, "state_dir:") {
		// Never the host's /run/govscsi: tests in parallel would wait for
		// each other's lock.
		extra = "state_dir: " + filepath.Join(dir, "state") + "\n" + extra
	}
	cfg, err := server.ParseConfig([]byte(fmt.Sprintf("domid: 0\nallow_paths: [%s]\n%s", dir, extra)))
	if err != nil {
		t.Fatal(err)
	}
	if b.store, err = xs.Open(0); err != nil {
		t.Fatal(err)
	}
	b.Server, err = server.New(cfg, server.Deps{Store: b.store, Grants: b.Grants,
		OpenEvents: func() (xenif.EventChannel, error) { return b.Hub.Open(0) },
		Logger:     log})
	if err != nil {
		b.store.Close()
		t.Fatal(err)
	}
	var ctx context.Context
	ctx, b.cancel = context.WithCancel(context.Background())
	go func() { b.runDone <- b.Server.Run(ctx) }()
	return b
}

// Stop ends the backend's Run (failing the test if Run fails or takes
// more than 10s to return) and closes its store.
func (b *Backend) Stop() {
	b.cancel()
	select {
	case err := <-b.runDone:
		if err != nil {
			b.t.Errorf("backend Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		b.t.Error("backend Run did not return")
	}
	b.store.Close()
}

// GuestRing is what guest domid's frontend offers the backend: a fresh
// front ring page granted to dom0 and an unbound port for dom0, as the
// ring-ref and event-channel values to write.
func (b *Backend) GuestRing(t testing.TB, domid uint32) (ref, port string) {
	t.Helper()
	page := make([]byte, vscsiif.PageSize)
	if _, err := ring.NewFront(page, vscsiif.RequestSize); err != nil {
		t.Fatal(err)
	}
	g := b.Grants.Grant(domid, page, false)
	p := b.Hub.Guest(domid).AllocUnbound(0)
	return strconv.Itoa(int(g)), strconv.Itoa(int(p))
}
