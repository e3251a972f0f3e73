//go:build !(linux && cgo)

package xs

import (
	"errors"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// ErrUnsupported is returned by Open in builds without cgo or off Linux.
var ErrUnsupported = errors.New("xs: libxenstore needs linux and cgo")

// OpenFlag selects xs_open options.
type OpenFlag uint

// Open options (no effect in this build).
const (
	ReadOnly OpenFlag = 1 << iota
	SocketOnly
	UnwatchFilter
)

// Handle is unavailable in this build.
type Handle struct{ xenif.Store }

// Open always fails in this build.
func Open(OpenFlag) (*Handle, error) { return nil, ErrUnsupported }
