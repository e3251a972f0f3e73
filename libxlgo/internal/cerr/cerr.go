// Package cerr turns errno values from the Xen C libraries (and from the
// xenstore wire protocol's error strings) into Go errors that keep the
// operation and object they concern and still match errors.Is(err,
// syscall.EXXX) / fs.ErrNotExist.
package cerr

import (
	"errors"
	"syscall"
)

// Error is one failed operation: Source is the library ("xs", "gnttab",
// "evtchn"), Op the operation ("read", "map"), Object what it was applied to
// (a xenstore path, a domid...; may be empty).
type Error struct {
	Source string
	Op     string
	Object string
	Errno  syscall.Errno
}

func (e *Error) Error() string {
	s := e.Source + " " + e.Op
	if e.Object != "" {
		s += " " + e.Object
	}
	return s + ": " + e.Errno.Error()
}

// Unwrap exposes the errno, so errors.Is(err, syscall.ENOENT) and
// errors.Is(err, fs.ErrNotExist) work.
func (e *Error) Unwrap() error { return e.Errno }

// ErrnoValue returns the raw errno number.
func (e *Error) ErrnoValue() int { return int(e.Errno) }

// New returns an *Error for errno, or nil if errno is 0. A C call that
// reported failure but left errno at 0 is given EIO rather than silently
// turned into success; use FromErr for the cgo "r, err := C.f()" form.
func New(source, op, object string, errno syscall.Errno) error {
	if errno == 0 {
		return nil
	}
	return &Error{Source: source, Op: op, Object: object, Errno: errno}
}

// FromErr wraps the error cgo returns next to a C call's result (the errno
// captured in the same call). A failing call whose errno is 0 (err == nil)
// becomes EIO, so failure is never lost.
func FromErr(source, op, object string, err error) error {
	var en syscall.Errno
	if errors.As(err, &en) && en != 0 {
		return &Error{Source: source, Op: op, Object: object, Errno: en}
	}
	return &Error{Source: source, Op: op, Object: object, Errno: syscall.EIO}
}

// Errno extracts the errno from err (0 if err carries none).
func Errno(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return 0
}
