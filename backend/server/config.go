package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"gopkg.in/yaml.v3"

	"github.com/govscsi/govscsi/backend/lunconf"
	"github.com/govscsi/govscsi/backend/prstore"
	"github.com/govscsi/govscsi/backend/stats"
	"github.com/govscsi/govscsi/backend/xenbus"
	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/internal/opfile"
	"github.com/govscsi/govscsi/internal/strictyaml"
)

// DefaultConfigPath is where the daemon looks for its configuration.
const DefaultConfigPath = "/etc/govscsi/vscsi-backend.yaml"

// Config is the daemon's YAML configuration. Every field has a default;
// an empty file is a valid configuration.
type Config struct {
	// BackendType is the directory under /local/domain/<me>/backend the
	// daemon serves (default "vscsiu"; "vscsi" would compete with the
	// kernel's xen-scsiback, see docs/backend.md).
	BackendType string `yaml:"backend_type"`
	// Domid is this backend's domain; default: read from xenstore's
	// "domid" node of the connection's own home.
	Domid *uint32 `yaml:"domid"`
	// LogLevel: trace, debug, info (default), warn, error.
	LogLevel string `yaml:"log_level"`
	// LogJSON writes JSON log lines (for journald/log shippers).
	LogJSON bool `yaml:"log_json"`
	// StatsSocket is the stats endpoint ("" for stats.DefaultSocket,
	// "none" to disable).
	StatsSocket string `yaml:"stats_socket"`
	// AllowPaths lists the path prefixes p-devs may name (default
	// ["/dev/"]); image files need their directory listed here.
	AllowPaths []string `yaml:"allow_paths"`
	// MaxRAM caps ram:<size> disks ("4G" default, "0" disables them).
	MaxRAM string `yaml:"max_ram"`
	// MaxSegments is feature-sg-grant (default 128).
	MaxSegments int `yaml:"max_segments"`
	// Workers per vhost for non-inline LUNs (default 16).
	Workers int `yaml:"workers"`
	// StateDir keeps, on tmpfs, what must outlive the process: per vhost
	// the ring's in-flight journal and the RAM disks (default
	// /run/govscsi; the backend type is appended). "none": nothing, so a
	// crash loses the requests in flight and RAM disks die with the
	// process.
	StateDir string `yaml:"state_dir"`
	// OnStop is what SIGTERM/SIGINT (and the C API's vscsi_backend_stop)
	// do: "handover" (default: every guest stays connected for the next
	// vscsi-backend) or "disconnect" (close every guest's vhost, the old
	// behaviour). xl-vscsi backend-stop chooses per stop.
	OnStop   string   `yaml:"on_stop"`
	Timeouts Timeouts `yaml:"timeouts"`
	// Reservations says where the persistent reservation state of the
	// emulated logical units is kept (docs/backend.md §9.2).
	Reservations Reservations `yaml:"reservations"`
	// Metrics: Prometheus text exposition, off by default (metrics.go).
	Metrics MetricsConfig `yaml:"metrics"`
}

// Reservations are the directories of backend/prstore.
type Reservations struct {
	// StateDir keeps every unit's state for the next process of a
	// handover or restart (tmpfs; default prstore.DefaultRunDir).
	StateDir string `yaml:"state_dir"`
	// APTPLDir keeps the state of units whose initiator asked for APTPL
	// (persist through power loss) across reboots (default
	// prstore.DefaultAPTPLDir).
	APTPLDir string `yaml:"aptpl_dir"`
}

// DefaultStateDir is the parent of the state directories.
const DefaultStateDir = "/run/govscsi"

// Timeouts are Go durations ("5s", "500ms").
type Timeouts struct {
	Teardown  time.Duration `yaml:"teardown"`   // one connection's teardown (P23)
	Remove    time.Duration `yaml:"remove"`     // frontend's grace after the toolstack wrote BE=5
	Shutdown  time.Duration `yaml:"shutdown"`   // frontend's grace when the daemon stops with disconnect
	Handover  time.Duration `yaml:"handover"`   // commands in flight finishing when the daemon hands over
	SGCommand time.Duration `yaml:"sg_command"` // each SG_IO pass-through command
}

// ParseConfig parses YAML strictly: unknown keys, keys given twice, a
// second document and bad values are errors naming the key or line. It
// applies every check the daemon applies at start, so --check-config
// passes exactly what the daemon runs with.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if len(data) > opfile.MaxConfigSize {
		return Config{}, fmt.Errorf("config: %d bytes, larger than the %d-byte limit", len(data), opfile.MaxConfigSize)
	}
	root, err := strictyaml.Document(data)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if root != nil {
		if err := decodeFields(root, reflect.ValueOf(&c).Elem(), ""); err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
	}
	if err := c.fill(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// decodeFields decodes a YAML mapping into the struct v field by field, so
// every error names its key ("timeouts.remove: ..."); unknown keys are
// errors too.
func decodeFields(n *yaml.Node, v reflect.Value, prefix string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		where := "top level"
		if prefix != "" {
			where = strings.TrimSuffix(prefix, ".")
		}
		return fmt.Errorf("line %d: %s: want a mapping of keys to values", n.Line, where)
	}
	fields := map[string]int{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" {
			fields[tag] = i
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := prefix + k.Value
		idx, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown key %q", k.Line, name)
		}
		f := v.Field(idx)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
			if err := decodeFields(val, f, name+"."); err != nil {
				return err
			}
			continue
		}
		if err := val.Decode(f.Addr().Interface()); err != nil {
			msg := err.Error()
			if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
				msg = te.Errors[0]
			}
			return fmt.Errorf("%s: %s", name, strings.TrimPrefix(msg, "yaml: "))
		}
	}
	return nil
}

// LoadConfig reads path. A missing file at the default path means "all
// defaults"; a missing file named explicitly is an error. Only a regular
// file of at most opfile.MaxConfigSize bytes is read.
func LoadConfig(path string, explicit bool) (Config, error) {
	data, err := opfile.Read("config", path, opfile.MaxConfigSize)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return ParseConfig(nil)
		}
		return Config{}, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *Config) fill() error {
	if c.BackendType == "" {
		c.BackendType = xenbus.DefaultType
	}
	// The toolstack's definition of a type name (it writes the
	// directory); xenbus.New's own check is looser.
	if err := cfgparse.ValidBackendType(c.BackendType); err != nil {
		return fmt.Errorf("config: backend_type: %w", err)
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		return fmt.Errorf("config: log_level %q: want trace, debug, info, warn or error", c.LogLevel)
	}
	if c.StatsSocket == "" {
		c.StatsSocket = stats.DefaultSocket
	}
	if c.StatsSocket != "none" && len(c.StatsSocket) >= maxSocketPath {
		return fmt.Errorf("config: stats_socket %q: %d bytes, a Unix socket path must be shorter than %d", c.StatsSocket, len(c.StatsSocket), maxSocketPath)
	}
	if c.AllowPaths == nil {
		c.AllowPaths = []string{"/dev/"}
	}
	for _, p := range c.AllowPaths {
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
			return fmt.Errorf("config: allow_paths entry %q: want an absolute path that does not contain \"..\"", p)
		}
		if p == "/" {
			return fmt.Errorf("config: allow_paths entry \"/\" would let a p-dev open any file")
		}
	}
	if c.MaxSegments != 0 && (c.MaxSegments < 26 || c.MaxSegments > 26*512) {
		return fmt.Errorf("config: max_segments %d: want 26..%d", c.MaxSegments, 26*512)
	}
	if c.Workers < 0 || c.Workers > 1024 {
		return fmt.Errorf("config: workers %d: want 0..1024", c.Workers)
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.StateDir != "none" && (!strings.HasPrefix(c.StateDir, "/") || filepath.Clean(c.StateDir) != c.StateDir || c.StateDir == "/") {
		return fmt.Errorf("config: state_dir %q: want a clean absolute directory (not /), or none", c.StateDir)
	}
	if c.OnStop == "" {
		c.OnStop = "handover"
	}
	if _, err := xenbus.ParseStopMode(c.OnStop); err != nil {
		return fmt.Errorf("config: on_stop %q: want handover or disconnect", c.OnStop)
	}
	for name, d := range map[string]time.Duration{"teardown": c.Timeouts.Teardown, "remove": c.Timeouts.Remove,
		"shutdown": c.Timeouts.Shutdown, "handover": c.Timeouts.Handover, "sg_command": c.Timeouts.SGCommand} {
		if d < 0 {
			return fmt.Errorf("config: timeouts.%s %v is negative", name, d)
		}
	}
	if _, err := c.maxRAM(); err != nil {
		return err
	}
	if c.Reservations.StateDir == "" {
		c.Reservations.StateDir = prstore.DefaultRunDir
	}
	if c.Reservations.APTPLDir == "" {
		c.Reservations.APTPLDir = prstore.DefaultAPTPLDir
	}
	for key, d := range map[string]string{"state_dir": c.Reservations.StateDir, "aptpl_dir": c.Reservations.APTPLDir} {
		if !filepath.IsAbs(d) || filepath.Clean(d) != d || d == "/" {
			return fmt.Errorf("config: reservations.%s %q: want a clean absolute directory other than /", key, d)
		}
	}
	return c.Metrics.check()
}

// maxSocketPath is sizeof(sockaddr_un.sun_path) on Linux, with its NUL.
const maxSocketPath = 108

// maxRAM converts max_ram to a lunconf.Policy.MaxRAM value.
func (c *Config) maxRAM() (int64, error) {
	switch c.MaxRAM {
	case "":
		return 0, nil
	case "0":
		return -1, nil
	}
	s, err := lunconf.Parse("ram:" + c.MaxRAM)
	if err != nil {
		return 0, fmt.Errorf("config: max_ram %q: want a size such as 4G", c.MaxRAM)
	}
	return s.Size, nil
}

// Policy is the p-dev policy the configuration describes.
func (c *Config) Policy() lunconf.Policy {
	m, _ := c.maxRAM()
	return lunconf.Policy{AllowPaths: c.AllowPaths, MaxRAM: m}
}
