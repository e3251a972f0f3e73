//go:build !(linux && cgo)

package evtchn

import (
	"context"
	"errors"
	"fmt"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Device is the node libxenevtchn opens.
const Device = "/dev/xen/evtchn"

// Handle is unusable in a build without cgo or off Linux.
type Handle struct{}

var _ xenif.EventChannel = (*Handle)(nil)

var errNoCgo = fmt.Errorf("evtchn: built without cgo or not on Linux: %w", errors.ErrUnsupported)

// Open always fails: libxenevtchn needs cgo on Linux.
func Open() (*Handle, error) { return nil, errNoCgo }

// FromFd always fails: libxenevtchn needs cgo on Linux.
func FromFd(int) (*Handle, error) { return nil, errNoCgo }

func (e *Handle) BindInterdomain(uint32, uint32) (uint32, error) { return 0, errNoCgo }
func (e *Handle) BindUnboundPort(uint32) (uint32, error)         { return 0, errNoCgo }
func (e *Handle) Notify(uint32) error                            { return errNoCgo }
func (e *Handle) Pending() (uint32, error)                       { return 0, errNoCgo }
func (e *Handle) WaitPending(context.Context) (uint32, error)    { return 0, errNoCgo }
func (e *Handle) Unmask(uint32) error                            { return errNoCgo }
func (e *Handle) Unbind(uint32) error                            { return errNoCgo }
func (e *Handle) Fd() int                                        { return -1 }
func (e *Handle) Close() error                                   { return nil }
