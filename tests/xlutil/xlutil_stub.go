//go:build !cgo || govscsi_noxen

package xlutil

import (
	"errors"
	"syscall"
)

// Available reports whether this build talks to the real libxlutil: it does
// not (built without cgo or with the govscsi_noxen tag).
const Available = false

var errUnavailable = errors.New("xlutil: built without libxlutil (no cgo or -tags govscsi_noxen)")

// Config is a stand-in; Read always fails in this build.
type Config struct{}

// Value mirrors the cgo build's type.
type Value struct {
	IsList bool
	Str    string
	List   []Value
}

func Read(string, []byte) (*Config, syscall.Errno, error) { return nil, 0, errUnavailable }
func (c *Config) Close()                                  {}
func (c *Config) Report() string                          { return "" }
func (c *Config) GetString(string) (string, syscall.Errno) {
	return "", syscall.ENOSYS
}
func (c *Config) GetLong(string) (int64, syscall.Errno) { return 0, syscall.ENOSYS }
func (c *Config) GetBoundedLong(string, int64, int64) (int64, syscall.Errno) {
	return 0, syscall.ENOSYS
}
func (c *Config) GetList(string) ([]Value, []bool, syscall.Errno) { return nil, nil, syscall.ENOSYS }
