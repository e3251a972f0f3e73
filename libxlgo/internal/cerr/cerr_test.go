package cerr

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

func TestErrorMessageAndIs(t *testing.T) {
	err := New("xs", "read", "/local/domain/5/x", syscall.ENOENT)
	if got, want := err.Error(), "xs read /local/domain/5/x: no such file or directory"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("plugin: %w", err)
	if !errors.Is(wrapped, syscall.ENOENT) || !errors.Is(wrapped, fs.ErrNotExist) {
		t.Errorf("errors.Is does not see ENOENT through %v", wrapped)
	}
	if errors.Is(wrapped, syscall.EACCES) {
		t.Errorf("ENOENT error matched EACCES")
	}
	if Errno(wrapped) != syscall.ENOENT {
		t.Errorf("Errno = %v", Errno(wrapped))
	}
	if New("xs", "read", "/", 0) != nil {
		t.Errorf("errno 0 gave an error")
	}
}

func TestFromErrNeverLosesFailure(t *testing.T) {
	if e := FromErr("xs", "open", "", nil); !errors.Is(e, syscall.EIO) {
		t.Errorf("nil errno on failure gave %v, want EIO", e)
	}
	if e := FromErr("xs", "open", "", syscall.EAGAIN); !errors.Is(e, syscall.EAGAIN) {
		t.Errorf("got %v, want EAGAIN", e)
	}
	if got := FromErr("gnttab", "map", "", syscall.EPERM).Error(); got != "gnttab map: operation not permitted" {
		t.Errorf("message %q", got)
	}
}
