//go:build !(linux && cgo)

package gnttab

import (
	"errors"
	"fmt"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Device is the node libxengnttab opens.
const Device = "/dev/xen/gntdev"

// Handle is unusable in a build without cgo or off Linux.
type Handle struct{}

var _ xenif.Grants = (*Handle)(nil)

var errNoCgo = fmt.Errorf("gnttab: built without cgo or not on Linux: %w", errors.ErrUnsupported)

// Open always fails: libxengnttab needs cgo on Linux.
func Open() (*Handle, error) { return nil, errNoCgo }

func (g *Handle) Close() error                        { return nil }
func (g *Handle) SetMaxGrants(uint32) error           { return errNoCgo }
func (g *Handle) Mapped() int                         { return 0 }
func (g *Handle) GrantCopy([]xenif.GrantCopyOp) error { return errNoCgo }
func (g *Handle) Unmap([]byte) error                  { return errNoCgo }

func (g *Handle) MapGrantRef(uint32, uint32, bool) ([]byte, error) { return nil, errNoCgo }

func (g *Handle) MapGrantRefs(uint32, []uint32, bool) ([]byte, error) { return nil, errNoCgo }
