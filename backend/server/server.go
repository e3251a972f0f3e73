// Package server is the userspace vscsi backend daemon's glue: it turns a
// Config into a running xenbus.Backend whose LUNs come from lunconf (under
// the configured allow-list) wrapped in stats counters, and serves the
// stats endpoint. It is pure Go over the xenif interfaces; the command
// backend/cmd/vscsi-backend supplies the real libxenstore, gntdev and
// evtchn devices, tests supply xsfake and xenfake.
package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/backend/lunconf"
	"github.com/govscsi/govscsi/backend/prstore"
	"github.com/govscsi/govscsi/backend/safeopen"
	"github.com/govscsi/govscsi/backend/stats"
	"github.com/govscsi/govscsi/backend/xenbus"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Deps are the Xen devices the server runs on.
type Deps struct {
	Store      xenif.Store
	Grants     datapath.GrantDevice
	OpenEvents func() (xenif.EventChannel, error)
	Logger     hclog.Logger
}

// Server is a configured backend daemon.
type Server struct {
	cfg     Config
	deps    Deps
	log     hclog.Logger
	domid   uint32
	backend *xenbus.Backend
	stats   *stats.Registry
	// metricsAddr is the HTTP metrics endpoint's address once listening.
	metricsAddr atomic.Value

	mu      sync.Mutex
	stopRun context.CancelFunc // ends the running Run (Stop)
	stopped bool               // Stop came before Run
}

// New resolves the domid (config or xenstore) and builds the backend.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Store == nil || deps.Grants == nil || deps.OpenEvents == nil {
		return nil, errors.New("server: Deps needs Store, Grants and OpenEvents")
	}
	if deps.Logger == nil {
		deps.Logger = hclog.NewNullLogger()
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, stats: stats.NewRegistry()}
	if cfg.Domid != nil {
		s.domid = *cfg.Domid
	} else {
		v, err := deps.Store.Read(xenif.NoTx, "domid")
		if err != nil {
			return nil, fmt.Errorf("server: own domid: reading xenstore node \"domid\": %w (set domid in the config)", err)
		}
		if s.domid, err = xenbus.ParseDomid(strings.TrimSpace(v)); err != nil {
			return nil, fmt.Errorf("server: own domid: %w", err)
		}
	}
	policy := cfg.Policy()
	maxSegs := cfg.MaxSegments
	if maxSegs == 0 {
		maxSegs = datapath.DefaultMaxSegments
	}
	dirs := prstore.Dirs{Run: cfg.Reservations.StateDir, APTPL: cfg.Reservations.APTPLDir, Log: s.log.Named("reservations")}
	units := &lunconf.Units{PR: dirs.For}
	open := func(req xenbus.LUNRequest) (datapath.Entry, error) {
		ctl := fmt.Sprintf("%d:%d:%d", req.Addr.Channel, req.Addr.Target, req.Addr.LUN)
		o, err := policy.Open(req.Pdev, lunconf.Options{
			Units:            units,
			Initiator:        s.initiator(req),
			ID:               diskID(req),
			LUN:              uint64(req.Addr.LUN),
			ReportLUNs:       req.ReportLUNs,
			SGTimeout:        cfg.Timeouts.SGCommand,
			MaxTransferBytes: maxSegs * 4096,
			StatePath:        req.StatePath,
		})
		if err != nil {
			return datapath.Entry{}, err
		}
		if o.Restored {
			s.log.Info("RAM disk contents kept from the previous backend", "domid", req.Domid, "vhost", req.Vhost,
				"dev", req.Dev, "pdev", req.Pdev)
		}
		lun := s.stats.Wrap(stats.Meta{Domid: req.Domid, Vhost: req.Vhost, Dev: req.Dev, Addr: ctl, Pdev: req.Pdev}, o.LUN)
		return datapath.Entry{LUN: lun, Inline: o.Inline}, nil
	}
	mode, err := xenbus.ParseStopMode(cfg.OnStop)
	if err != nil {
		return nil, err
	}
	b, err := xenbus.New(xenbus.Config{
		Store: deps.Store, Domid: s.domid, Type: cfg.BackendType,
		OpenLUN: open, Grants: deps.Grants, OpenEvents: deps.OpenEvents,
		MaxSegments: cfg.MaxSegments, Workers: cfg.Workers,
		TeardownTimeout: cfg.Timeouts.Teardown, RemoveTimeout: cfg.Timeouts.Remove,
		ShutdownTimeout: cfg.Timeouts.Shutdown, HandoverTimeout: cfg.Timeouts.Handover,
		StateDir: cfg.stateDir(), StopMode: mode,
		Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	s.backend = b
	return s, nil
}

// diskID seeds a LUN's serial number and NAA name. A file or device keeps
// the same identity wherever it is attached (stable /dev/disk/by-id names
// in the guest, and a disk shared by two guests looks the same to both).
// RAM disks are distinct disks even with equal p-devs, so two "ram:1G" in
// one guest must not look like two paths to one LUN (multipath would merge
// them).
func diskID(req xenbus.LUNRequest) string {
	if strings.HasPrefix(req.Pdev, "ram:") {
		return fmt.Sprintf("%s@%d/%s/%s", req.Pdev, req.Domid, req.Vhost, req.Dev)
	}
	return req.Pdev
}

// initiator names a vhost's I_T nexus for persistent reservations: the
// guest's UUID (/local/domain/<domid>/vm is "/vm/<uuid>", written by
// libxl) and the vhost, so a guest finds its registrations again after a
// reboot (a new domid), a migration back, or a backend restart. Without a
// readable UUID (other toolstacks, tests) the domid stands in.
func (s *Server) initiator(req xenbus.LUNRequest) string {
	vm, err := s.deps.Store.Read(xenif.NoTx, fmt.Sprintf("/local/domain/%d/vm", req.Domid))
	if uuid, ok := strings.CutPrefix(strings.TrimSpace(vm), "/vm/"); err == nil && ok && validUUID(uuid) {
		return "vm:" + uuid + "/vhost:" + req.Vhost
	}
	return fmt.Sprintf("dom:%d/vhost:%s", req.Domid, req.Vhost)
}

// validUUID accepts the 8-4-4-4-12 hex form libxl writes.
func validUUID(u string) bool {
	if len(u) != 36 {
		return false
	}
	for i, c := range u {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'):
			return false
		}
	}
	return true
}

// Domid is the backend domain served.
func (s *Server) Domid() uint32 { return s.domid }

// Backend is the xenbus backend (for tests and status).
func (s *Server) Backend() *xenbus.Backend { return s.backend }

// Snapshot is what the stats endpoint returns.
func (s *Server) Snapshot() stats.Snapshot {
	return stats.Snapshot{Time: time.Now(), UptimeSeconds: s.stats.Uptime().Seconds(), LUNs: s.stats.LUNs(),
		Vhosts: s.vhostStatuses()}
}

// vhostStatuses is every served vhost's state and datapath counters.
func (s *Server) vhostStatuses() []stats.VhostStatus {
	var out []stats.VhostStatus
	for _, v := range s.backend.Vhosts() {
		out = append(out, stats.VhostStatus{Domid: v.Domid, Vhost: v.Vhost, State: v.State,
			Frontend: v.Frontend, Connected: v.Connected, Error: v.Error,
			Requests: v.Requests, Responses: v.Responses, Rejected: v.Rejected,
			Notifies: v.Notifies, Events: v.Events, Replayed: v.Replayed})
	}
	return out
}

// Run serves until ctx ends or Stop is called (then it stops as on_stop
// or Stop says: a handover or a disconnect) or the xenstore connection
// fails.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.stopRun = cancel
	if s.stopped {
		cancel()
	}
	s.mu.Unlock()
	// The state directory's lock first: a daemon started while the
	// previous one still hands over waits here, before it takes over the
	// socket the old one will unlink when it closes it.
	if err := s.backend.AcquireState(ctx); err != nil {
		return err
	}
	defer s.backend.ReleaseState()
	sctx, stopStats := context.WithCancel(context.Background())
	defer stopStats()
	statsDone := make(chan error, 1)
	if s.cfg.StatsSocket != "none" {
		l, err := stats.Listen(s.cfg.StatsSocket)
		if err != nil {
			return err
		}
		s.log.Info("stats endpoint", "socket", s.cfg.StatsSocket)
		ctl := stats.Controls{Stop: func(mode string) (stats.StopReply, error) {
			m, err := xenbus.ParseStopMode(mode)
			if err != nil {
				return stats.StopReply{}, err
			}
			n := 0
			for _, v := range s.backend.Vhosts() {
				if v.Connected {
					n++
				}
			}
			s.log.Info("stop requested on the control socket", "mode", m.String(), "connected_vhosts", n)
			s.Stop(m)
			return stats.StopReply{Stopping: true, Mode: m.String(), Pid: os.Getpid(), Vhosts: n}, nil
		}}
		go func() { statsDone <- stats.ServeControls(sctx, l, s.Snapshot, ctl, s.log) }()
	} else {
		statsDone <- nil
	}
	waitMetrics, err := s.startMetrics(sctx)
	if err != nil {
		stopStats()
		<-statsDone
		return err
	}
	s.log.Info("vscsi backend starting", "domid", s.domid, "type", s.cfg.BackendType,
		"allow_paths", strings.Join(s.cfg.AllowPaths, ","), "max_segments", strconv.Itoa(s.cfg.MaxSegments),
		"state_dir", s.cfg.stateDir(), "on_stop", s.cfg.OnStop)
	if !safeopen.Available() {
		s.log.Error("file and device p-devs will be refused", "error", safeopen.ErrNoOpenat2)
	}
	err = s.backend.Run(ctx)
	stopStats()
	if serr := <-statsDone; serr != nil && err == nil {
		err = serr
	}
	if merr := waitMetrics(); merr != nil && err == nil {
		err = merr
	}
	return err
}

// Stop makes Run stop in mode m: StopHandover leaves every guest connected
// for the next backend, StopDisconnect closes every guest's vhost first.
func (s *Server) Stop(m xenbus.StopMode) {
	s.backend.SetStopMode(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.stopRun != nil {
		s.stopRun()
	}
}

// StopMode is how Run stops (or stopped).
func (s *Server) StopMode() xenbus.StopMode { return s.backend.StopMode() }

// HandedOver is how many vhosts the last Run left connected.
func (s *Server) HandedOver() int { return s.backend.HandedOver() }

// stateDir is the backend's state directory ("" for none).
func (c *Config) stateDir() string {
	if c.StateDir == "none" || c.StateDir == "" {
		return ""
	}
	return filepath.Join(c.StateDir, c.BackendType)
}
