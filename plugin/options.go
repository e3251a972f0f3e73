package plugin

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/internal/strictyaml"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/hashicorp/go-hclog"
)

// Default timeouts, the values libxl uses for the same waits
// (LIBXL_INIT_TIMEOUT, LIBXL_DESTROY_TIMEOUT, LIBXL_HOTPLUG_TIMEOUT).
const (
	DefaultInitTimeout    = 10 * time.Second
	DefaultDestroyTimeout = 10 * time.Second
	DefaultHotplugTimeout = 40 * time.Second
)

// Options configure a Toolstack. The zero value is usable: backend in
// dom0, flavour kernel (Linux xen-scsiback, backend type vscsi), libxl's
// timeouts, no hotplug script.
type Options struct {
	// BackendDomid is the domain that runs the vscsi backend.
	BackendDomid uint32
	// Flavour selects how a pdev is rendered as p-dev (cfgparse.Flavour).
	Flavour cfgparse.Flavour
	// BackendType is the backend type directory new vhosts are written
	// under, /local/domain/<be>/backend/<BackendType>; default
	// Flavour.BackendType() ("vscsi", or "vscsiu" for the userspace
	// backend). Existing vhosts are always handled under the type that
	// serves them, whatever this says (docs/toolstack.md).
	BackendType string
	// InitTimeout bounds each wait for a vhost or device to connect.
	InitTimeout time.Duration
	// DestroyTimeout bounds each wait for a vhost or device to close.
	DestroyTimeout time.Duration
	// HotplugScript, if set, is run as `<script> add` once a new vhost's
	// backend reaches InitWait and `<script> remove` after it closed
	// (libxl's block-script convention, protocol.md §4.2).
	HotplugScript string
	// HotplugTimeout bounds one run of the hotplug script.
	HotplugTimeout time.Duration
	// HotplugLog receives the script's stdout and stderr (default: the
	// logger's output is not used; io.Discard).
	HotplugLog io.Writer
	// SysfsRoot, ConfigfsRoot and Stat are handed to cfgparse.Resolver
	// (tests point them at fixture trees).
	SysfsRoot, ConfigfsRoot string
	Stat                    cfgparse.StatFunc
	// DeferConnect makes Apply and Attach stop waiting once every new
	// vhost's backend has probed it (InitWait) and the hotplug script ran:
	// they do not wait for the guest's frontend. Result.Waits lists what is
	// still to connect; WaitConnected waits for it. `xl-vscsi create` needs
	// this: the domain is paused until the devices are written, and a
	// paused guest's xen-scsifront cannot connect (libxl likewise waits
	// only for the backend before it unpauses).
	DeferConnect bool
	// CancelKeepsDevices makes an operation whose context is cancelled
	// (not timed out) while it waits for the peers leave what it wrote
	// instead of rolling it back. vscsi-autoattach sets it: stopping the
	// daemon must never take a device from a running guest, and a guest may
	// be connecting the device while the daemon waits for it.
	CancelKeepsDevices bool
	// DryRun makes writing operations compute and record their writes
	// (see Result.Writes) without touching xenstore and without waiting.
	DryRun bool
	// Logger receives progress messages (default: a null logger).
	Logger hclog.Logger
}

func (o Options) withDefaults() Options {
	if o.Flavour == 0 {
		o.Flavour = cfgparse.FlavourKernel
	}
	if o.BackendType == "" {
		o.BackendType = o.Flavour.BackendType()
	}
	if o.InitTimeout <= 0 {
		o.InitTimeout = DefaultInitTimeout
	}
	if o.DestroyTimeout <= 0 {
		o.DestroyTimeout = DefaultDestroyTimeout
	}
	if o.HotplugTimeout <= 0 {
		o.HotplugTimeout = DefaultHotplugTimeout
	}
	if o.HotplugLog == nil {
		o.HotplugLog = io.Discard
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// yamlOptions is the YAML form of Options (the C API's vscsi_open takes
// it). Durations are Go duration strings ("10s", "500ms").
type yamlOptions struct {
	BackendDomid   *uint32 `yaml:"backend_domid"`
	Flavour        string  `yaml:"flavour"`
	BackendType    string  `yaml:"backend_type"`
	InitTimeout    string  `yaml:"init_timeout"`
	DestroyTimeout string  `yaml:"destroy_timeout"`
	Timeout        string  `yaml:"timeout"` // sets both of the above
	HotplugScript  string  `yaml:"hotplug_script"`
	HotplugTimeout string  `yaml:"hotplug_timeout"`
	HotplugLog     string  `yaml:"hotplug_log"`
	SysfsRoot      string  `yaml:"sysfs_root"`
	ConfigfsRoot   string  `yaml:"configfs_root"`
	LogLevel       string  `yaml:"log_level"`
}

// ParseOptionsYAML reads Options from YAML text such as
//
//	backend_domid: 0
//	flavour: kernel          # or hctl, userspace
//	backend_type: vscsi      # default from the flavour (userspace: vscsiu)
//	timeout: 10s
//	hotplug_script: /etc/xen/scripts/vscsi
//	hotplug_log: /var/log/xen/vscsi-hotplug.log
//
// Unknown keys are errors (naming the key), so typos do not pass silently.
// An opened hotplug_log file is returned as HotplugLog; the caller closes
// it through the returned closer (nil if nothing was opened).
func ParseOptionsYAML(text string) (Options, io.Closer, error) {
	var y yamlOptions
	if err := strictyaml.Decode([]byte(text), &y); err != nil {
		return Options{}, nil, fmt.Errorf("options: %w", err)
	}
	var o Options
	if y.BackendDomid != nil {
		if *y.BackendDomid >= xenif.DomidFirstReserved {
			return Options{}, nil, fmt.Errorf("options: backend_domid %d out of range (0-%d)", *y.BackendDomid, xenif.DomidFirstReserved-1)
		}
		o.BackendDomid = *y.BackendDomid
	}
	if y.Flavour != "" {
		f, err := cfgparse.ParseFlavour(y.Flavour)
		if err != nil {
			return Options{}, nil, fmt.Errorf("options: flavour: %w", err)
		}
		o.Flavour = f
	}
	if y.BackendType != "" {
		if err := cfgparse.ValidBackendType(y.BackendType); err != nil {
			return Options{}, nil, fmt.Errorf("options: backend_type: %w", err)
		}
		o.BackendType = y.BackendType
	}
	dur := func(name, s string, dst *time.Duration) error {
		if s == "" {
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("options: %s %q: want a positive duration such as 10s", name, s)
		}
		*dst = d
		return nil
	}
	if err := dur("timeout", y.Timeout, &o.InitTimeout); err != nil {
		return Options{}, nil, err
	}
	o.DestroyTimeout = o.InitTimeout
	for _, d := range []struct {
		name, s string
		dst     *time.Duration
	}{{"init_timeout", y.InitTimeout, &o.InitTimeout}, {"destroy_timeout", y.DestroyTimeout, &o.DestroyTimeout}, {"hotplug_timeout", y.HotplugTimeout, &o.HotplugTimeout}} {
		if err := dur(d.name, d.s, d.dst); err != nil {
			return Options{}, nil, err
		}
	}
	o.HotplugScript = y.HotplugScript
	o.SysfsRoot, o.ConfigfsRoot = y.SysfsRoot, y.ConfigfsRoot
	if y.LogLevel != "" {
		lv := hclog.LevelFromString(y.LogLevel)
		if lv == hclog.NoLevel {
			return Options{}, nil, fmt.Errorf("options: log_level %q: want trace, debug, info, warn or error", y.LogLevel)
		}
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "govscsi", Level: lv, Output: os.Stderr})
	}
	var closer io.Closer
	if y.HotplugLog != "" {
		// O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
		// hanging the toolstack in open(2).
		f, err := os.OpenFile(y.HotplugLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o640)
		if err != nil {
			return Options{}, nil, fmt.Errorf("options: hotplug_log: %w", err)
		}
		o.HotplugLog, closer = f, f
	}
	return o, closer, nil
}
