//go:build !(linux && cgo)

package xenctrl

import (
	"errors"
	"fmt"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Handle is unusable in a build without cgo or off Linux.
type Handle struct{}

var _ xenif.DomainControl = (*Handle)(nil)

var errNoCgo = fmt.Errorf("xenctrl: built without cgo or not on Linux: %w", errors.ErrUnsupported)

// Open always fails: libxenctrl needs cgo on Linux.
func Open() (*Handle, error) { return nil, errNoCgo }

func (x *Handle) Close() error         { return nil }
func (x *Handle) Pause(uint32) error   { return errNoCgo }
func (x *Handle) Unpause(uint32) error { return errNoCgo }
func (x *Handle) DomainInfo(uint32) (xenif.DomainInfo, error) {
	return xenif.DomainInfo{}, errNoCgo
}
