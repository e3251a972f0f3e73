// Command vscsi-autoattach is the dom0 daemon that gives domains started
// with plain `xl create` (or xendomains) their vscsi= devices: upstream xl
// ignores vscsi= (P1), so this watches @introduceDomain, finds the new
// domain's xl config by name (and uuid) in the config directories, and
// applies its vscsi= entries as `xl-vscsi apply` does; on @releaseDomain
// it removes the vscsi trees xl destroy leaves behind (P26). See
// vscsi-autoattach(8) and package plugin/autoattach.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/internal/opfile"
	"github.com/govscsi/govscsi/internal/strictyaml"
	"github.com/govscsi/govscsi/internal/version"
	"github.com/govscsi/govscsi/libxlgo/xenctrl"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/autoattach"
	"github.com/govscsi/govscsi/plugin/hold"
	"github.com/hashicorp/go-hclog"
	"gopkg.in/yaml.v3"
)

const prog = "vscsi-autoattach"

// DefaultConfigFile is the daemon's YAML configuration.
const DefaultConfigFile = "/etc/govscsi/autoattach.yaml"

// DefaultConnectTimeout bounds the wait for a new vhost to connect. It is
// far longer than libxl's 10 s because the daemon attaches to a guest
// that is already booting: its xen-scsifront connects only once the
// guest's kernel (or initramfs) loads the module.
const DefaultConnectTimeout = 5 * time.Minute

// fileConfig is the YAML file. toolstack holds plugin options in the
// form plugin.ParseOptionsYAML reads (and libgovscsi's vscsi_open takes).
type fileConfig struct {
	ConfigDirs []string `yaml:"config_dirs"`
	LogLevel   string   `yaml:"log_level"`
	// HoldTimeout bounds how long a new domain is held until its vscsi
	// devices are probed ("30s"; "0" holds no domain).
	HoldTimeout *string   `yaml:"hold_timeout"`
	Toolstack   yaml.Node `yaml:"toolstack"`
}

// settings is everything main needs, from the file and the flags.
type settings struct {
	dirs    []string
	hold    time.Duration // 0: no holds
	level   hclog.Level
	opts    plugin.Options
	closer  io.Closer
	once    bool
	timeout bool // the toolstack section set a timeout
}

// load reads the YAML file at path (a missing file is fine when it is the
// default one: every setting has a default).
func load(path string, mustExist bool) (settings, error) {
	st := settings{dirs: autoattach.DefaultConfigDirs, level: hclog.Info, hold: hold.DefaultMaxHold}
	data, err := opfile.Read("config", path, opfile.MaxConfigSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !mustExist {
			return st, nil
		}
		return st, err
	}
	var fc fileConfig
	if err := strictyaml.Decode(data, &fc); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	if len(fc.ConfigDirs) > 0 {
		st.dirs = fc.ConfigDirs
	}
	if fc.HoldTimeout != nil {
		d, err := time.ParseDuration(*fc.HoldTimeout)
		if *fc.HoldTimeout == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 || d > 10*time.Minute {
			return st, fmt.Errorf("%s: hold_timeout %q: want a duration from 0 (no holds) to 10m, such as 30s", path, *fc.HoldTimeout)
		}
		st.hold = d
	}
	if fc.LogLevel != "" {
		if st.level = hclog.LevelFromString(fc.LogLevel); st.level == hclog.NoLevel {
			return st, fmt.Errorf("%s: log_level %q: want trace, debug, info, warn or error", path, fc.LogLevel)
		}
	}
	if fc.Toolstack.Kind != 0 {
		if fc.Toolstack.Kind != yaml.MappingNode {
			return st, fmt.Errorf("%s: toolstack: want a mapping of toolstack options", path)
		}
		text, err := yaml.Marshal(&fc.Toolstack)
		if err != nil {
			return st, fmt.Errorf("%s: toolstack: %w", path, err)
		}
		o, closer, err := plugin.ParseOptionsYAML(string(text))
		if err != nil {
			return st, fmt.Errorf("%s: toolstack %w", path, err)
		}
		st.opts, st.closer = o, closer
		var keys map[string]any
		_ = yaml.Unmarshal(text, &keys)
		_, t1 := keys["timeout"]
		_, t2 := keys["init_timeout"]
		st.timeout = t1 || t2
	}
	return st, nil
}

// dirList is a repeatable -config-dir flag.
type dirList []string

func (d *dirList) String() string     { return strings.Join(*d, ",") }
func (d *dirList) Set(s string) error { *d = append(*d, s); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// stdout receives --version (a variable for the tests).
var stdout io.Writer = os.Stdout

func run(args []string, stderr io.Writer) int {
	fl := flag.NewFlagSet(prog, flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", DefaultConfigFile, "the YAML configuration `file`")
	var dirs dirList
	fl.Var(&dirs, "config-dir", "search `dir` for xl domain configs (repeatable; replaces config_dirs)")
	once := fl.Bool("once", false, "reconcile once (attach to the running domains that lack their devices, clean up after gone ones) and exit")
	level := fl.String("log-level", "", "trace, debug, info, warn or error (overrides log_level)")
	be := fl.Int("backend-domid", -1, "the domain running the vscsi backend (overrides toolstack.backend_domid)")
	showVersion := fl.Bool("version", false, "print the version and exit")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [options]\n\nAttach the vscsi= devices of domains started by plain 'xl create', and remove\nthe vscsi trees of destroyed domains. See vscsi-autoattach(8).\n\nOptions:\n", prog)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fl.NArg() != 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", prog, fl.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "%s %s\n", prog, version.String())
		return 0
	}
	explicit := false
	fl.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	st, err := load(*cfgPath, explicit)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	if st.closer != nil {
		defer st.closer.Close()
	}
	if len(dirs) > 0 {
		st.dirs = dirs
	}
	if *level != "" {
		if st.level = hclog.LevelFromString(*level); st.level == hclog.NoLevel {
			fmt.Fprintf(stderr, "%s: -log-level %q: want trace, debug, info, warn or error\n", prog, *level)
			return 2
		}
	}
	if *be >= 0 {
		if *be >= xenif.DomidFirstReserved {
			fmt.Fprintf(stderr, "%s: -backend-domid %d out of range (0-%d)\n", prog, *be, xenif.DomidFirstReserved-1)
			return 2
		}
		st.opts.BackendDomid = uint32(*be)
	}
	st.once = *once
	log := hclog.New(&hclog.LoggerOptions{Name: prog, Level: st.level, Output: stderr})
	if st.opts.Logger == nil {
		st.opts.Logger = log.Named("toolstack")
	}
	if !st.timeout {
		st.opts.InitTimeout = DefaultConnectTimeout
	}
	if st.opts.HotplugLog == nil {
		st.opts.HotplugLog = stderr
	}
	st.opts.CancelKeepsDevices = true // a stop never takes a device from a guest
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, st, log); err != nil {
		if st.once {
			log.Error("not every domain got its vscsi devices", "error", err)
		} else {
			log.Error("stopped", "error", err)
		}
		return 1
	}
	return 0
}

// serve opens the two xenstore connections (one for the watches, one for
// the toolstack: each owns its event stream) and runs the watcher.
func serve(ctx context.Context, st settings, log hclog.Logger) error {
	ws, err := xs.Open(0)
	if err != nil {
		return fmt.Errorf("cannot connect to xenstore (is xenstored running? XENSTORED_PATH=%q): %w", os.Getenv("XENSTORED_PATH"), err)
	}
	defer ws.Close()
	tss, err := xs.Open(0)
	if err != nil {
		return fmt.Errorf("cannot connect to xenstore: %w", err)
	}
	defer tss.Close()
	ts := plugin.New(tss, st.opts)
	defer ts.Close()
	cfg := autoattach.Config{ConfigDirs: st.dirs, Logger: log}
	if st.hold > 0 && !st.once {
		h, closeHold, err := openHolder(tss, st.hold, log)
		if err != nil {
			log.Warn("cannot hold new domains until their vscsi devices are connected; they get them by hot-plug while they boot", "error", err)
		} else {
			defer closeHold()
			cfg.Holder = h
		}
	}
	w := autoattach.New(ws, ts, cfg)
	if st.once {
		return w.Reconcile(ctx)
	}
	return w.Run(ctx)
}

// openDomainControl opens libxenctrl; a variable so tests can substitute
// xenfake.Domains.
var openDomainControl = func() (xenif.DomainControl, error) { return xenctrl.Open() }

// openHolder opens the domain control and returns a Holder recording its
// holds through s.
func openHolder(s xenif.Store, max time.Duration, log hclog.Logger) (*hold.Holder, func(), error) {
	dc, err := openDomainControl()
	if err != nil {
		return nil, nil, err
	}
	h, err := hold.New(hold.Config{Control: dc, Store: s, Owner: prog, MaxHold: max, Logger: log.Named("hold")})
	if err != nil {
		dc.Close()
		return nil, nil, err
	}
	return h, func() { dc.Close() }, nil
}
