// Command vscsi-backend is govscsi's userspace Xen PV SCSI (vscsiif)
// backend daemon. It serves every vhost of every guest under
// /local/domain/<me>/backend/<backend_type> (default "vscsiu"), using
// libxenstore, /dev/xen/gntdev and /dev/xen/evtchn, and starts with no
// vhosts, waiting for the toolstack to create them.
//
//	vscsi-backend [--config FILE] [--foreground] [--log-level LEVEL] [--cpu-profile FILE]
//
// SIGTERM and SIGINT are a handover (on_stop: handover, the default): every
// guest stays connected, the commands in flight finish and are answered,
// xenstore is left as it is, and the next vscsi-backend takes the vhosts
// over (its in-flight journal and RAM disks under state_dir). The daemon
// exits 0 saying how many vhosts it left connected. Disconnecting every
// guest is the explicit `xl-vscsi backend-stop --disconnect` (or on_stop:
// disconnect). docs/backend.md describes the configuration, the p-dev
// syntax and the restart protocol.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/server"
	"github.com/govscsi/govscsi/backend/xenbus"
	"github.com/govscsi/govscsi/internal/version"
	"github.com/govscsi/govscsi/libxlgo/evtchn"
	"github.com/govscsi/govscsi/libxlgo/gnttab"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// stdout receives --version (a variable for the tests).
var stdout io.Writer = os.Stdout

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("vscsi-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", server.DefaultConfigPath, "YAML configuration `file`")
	foreground := fs.Bool("foreground", false, "log human-readable lines to stderr (default: JSON lines, for journald); the daemon never forks")
	logLevel := fs.String("log-level", "", "override the configured log level (trace, debug, info, warn, error)")
	checkOnly := fs.Bool("check-config", false, "parse the configuration, print it and exit")
	cpuProfile := fs.String("cpu-profile", "", "write a Go CPU profile (pprof) to `file` until the daemon exits (performance work)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "vscsi-backend %s\n", version.String())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vscsi-backend: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "config" {
			explicit = true
		}
	})
	cfg, err := server.LoadConfig(*configPath, explicit)
	if err != nil {
		fmt.Fprintf(stderr, "vscsi-backend: %v\n", err)
		return 2
	}
	if *logLevel != "" {
		if hclog.LevelFromString(*logLevel) == hclog.NoLevel {
			fmt.Fprintf(stderr, "vscsi-backend: --log-level %q: want trace, debug, info, warn or error\n", *logLevel)
			return 2
		}
		cfg.LogLevel = *logLevel
	}
	if *checkOnly {
		fmt.Fprintf(stderr, "%+v\n", cfg)
		return 0
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "vscsi-backend", Level: hclog.LevelFromString(cfg.LogLevel),
		Output: stderr, JSONFormat: cfg.LogJSON || !*foreground})

	store, err := xs.Open(0)
	if err != nil {
		log.Error("cannot connect to xenstore", "error", err)
		return 1
	}
	defer store.Close()
	grants, err := gnttab.Open()
	if err != nil {
		log.Error("cannot open the grant device (is xen-gntdev loaded?)", "error", err)
		return 1
	}
	defer grants.Close()
	openEvents := func() (xenif.EventChannel, error) { return evtchn.Open() }
	// Fail early if the event-channel device is missing.
	if ev, err := evtchn.Open(); err != nil {
		log.Error("cannot open the event-channel device (is xen-evtchn loaded?)", "error", err)
		return 1
	} else {
		ev.Close()
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			log.Error("cannot write the CPU profile", "file", *cpuProfile, "error", err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	srv, err := server.New(cfg, server.Deps{Store: store, Grants: grants, OpenEvents: openEvents, Logger: log})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("backend stopped", "error", err, "vhosts_left_connected", srv.HandedOver())
		return 1
	}
	if srv.StopMode() == xenbus.StopHandover {
		log.Info(fmt.Sprintf("clean shutdown: %d vhosts left connected for the next vscsi-backend", srv.HandedOver()),
			"vhosts_left_connected", srv.HandedOver())
	} else {
		log.Info("clean shutdown: every guest disconnected")
	}
	return 0
}
