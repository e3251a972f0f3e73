package hotplug

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/internal/opfile"
	"github.com/govscsi/govscsi/internal/strictyaml"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/hashicorp/go-hclog"
)

// DefaultConfigPath is read by the vscsi-hotplug binary if it exists.
const DefaultConfigPath = "/etc/govscsi/hotplug.yaml"

// Config is the hotplug's configuration: a YAML file (udev runs the script
// with the uevent's environment only, so install-time choices such as the
// flavour live in a file), overridden by GOVSCSI_* environment variables
// (tests, one-off runs).
type Config struct {
	Flavour      Flavour       `yaml:"flavour"`
	ConfigfsRoot string        `yaml:"configfs_root"`
	SysfsRoot    string        `yaml:"sysfs_root"`
	StateDir     string        `yaml:"state_dir"`
	LockTimeout  time.Duration `yaml:"-"`
	LogLevel     string        `yaml:"log_level"`
	// ConfigfsFixture makes the LIO code use FixtureConfigFS semantics and
	// never load modules: for tests on a directory tree, never for a host.
	ConfigfsFixture bool `yaml:"-"`
}

type yamlConfig struct {
	Flavour      string `yaml:"flavour"`
	ConfigfsRoot string `yaml:"configfs_root"`
	SysfsRoot    string `yaml:"sysfs_root"`
	StateDir     string `yaml:"state_dir"`
	LockTimeout  string `yaml:"lock_timeout"`
	LogLevel     string `yaml:"log_level"`
}

// Environment variables that override the file.
const (
	EnvConfig      = "GOVSCSI_HOTPLUG_CONFIG"
	EnvFlavour     = "GOVSCSI_FLAVOUR"
	EnvConfigfs    = "GOVSCSI_CONFIGFS"
	EnvFixture     = "GOVSCSI_CONFIGFS_FIXTURE"
	EnvSysfs       = "GOVSCSI_SYSFS"
	EnvStateDir    = "GOVSCSI_STATE_DIR"
	EnvLockTimeout = "GOVSCSI_LOCK_TIMEOUT"
	EnvLogLevel    = "GOVSCSI_LOG_LEVEL"
)

// LoadConfig reads the file named by GOVSCSI_HOTPLUG_CONFIG (default
// DefaultConfigPath; a missing default file is fine, a missing named one
// is not) and applies the environment overrides. Errors name the bad key
// or value.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{Flavour: FlavourKernel, StateDir: DefaultStateDir, LockTimeout: DefaultLockTimeout, LogLevel: "info"}
	path, named := getenv(EnvConfig), true
	if path == "" {
		path, named = DefaultConfigPath, false
	}
	data, err := opfile.Read("config", path, opfile.MaxConfigSize)
	switch {
	case err == nil:
		if err := c.parseYAML(path, data); err != nil {
			return c, err
		}
	case errors.Is(err, fs.ErrNotExist) && !named:
	default:
		return c, err
	}
	y := yamlConfig{
		Flavour: getenv(EnvFlavour), ConfigfsRoot: getenv(EnvConfigfs), SysfsRoot: getenv(EnvSysfs),
		StateDir: getenv(EnvStateDir), LockTimeout: getenv(EnvLockTimeout), LogLevel: getenv(EnvLogLevel),
	}
	if err := c.apply(y, "environment "); err != nil {
		return c, err
	}
	switch v := getenv(EnvFixture); v {
	case "", "0":
	case "1":
		c.ConfigfsFixture = true
	default:
		return c, fmt.Errorf("%s=%q: want 1 or 0", EnvFixture, v)
	}
	return c, nil
}

func (c *Config) parseYAML(path string, data []byte) error {
	var y yamlConfig
	if err := strictyaml.Decode(data, &y); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return c.apply(y, "config "+path+": ")
}

func (c *Config) apply(y yamlConfig, where string) error {
	if y.Flavour != "" {
		f, err := ParseFlavour(y.Flavour)
		if err != nil {
			return fmt.Errorf("%sflavour: %w", where, err)
		}
		c.Flavour = f
	}
	for _, p := range []struct {
		name, v string
		dst     *string
	}{{"configfs_root", y.ConfigfsRoot, &c.ConfigfsRoot}, {"sysfs_root", y.SysfsRoot, &c.SysfsRoot}, {"state_dir", y.StateDir, &c.StateDir}} {
		if p.v == "" {
			continue
		}
		if !strings.HasPrefix(p.v, "/") {
			return fmt.Errorf("%s%s %q: want an absolute path", where, p.name, p.v)
		}
		*p.dst = p.v
	}
	if y.LockTimeout != "" {
		d, err := time.ParseDuration(y.LockTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("%slock_timeout %q: want a positive duration such as 30s", where, y.LockTimeout)
		}
		c.LockTimeout = d
	}
	if y.LogLevel != "" {
		if hclog.LevelFromString(y.LogLevel) == hclog.NoLevel {
			return fmt.Errorf("%slog_level %q: want trace, debug, info, warn or error", where, y.LogLevel)
		}
		c.LogLevel = y.LogLevel
	}
	return nil
}

// Logger is the hclog logger the binary writes to (stderr, which the
// wrapper script sends to the hotplug log).
func (c Config) Logger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "vscsi-hotplug", Level: hclog.LevelFromString(c.LogLevel), Output: w})
}

// Runner builds a Runner on store from the configuration.
func (c Config) Runner(store xenif.Store, lg hclog.Logger) *Runner {
	res := &cfgparse.Resolver{SysfsRoot: c.SysfsRoot, ConfigfsRoot: c.ConfigfsRoot}
	lio := &LIO{FS: OSConfigFS{}, Root: c.ConfigfsRoot, LoadModule: Modprobe, Resolver: res}
	if c.ConfigfsFixture {
		lio.FS, lio.LoadModule = FixtureConfigFS{}, nil
	}
	return &Runner{Store: store, Flavour: c.Flavour, LIO: lio, Resolver: res, StateDir: c.StateDir, LockTimeout: c.LockTimeout, Logger: lg}
}
