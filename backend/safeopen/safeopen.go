// Package safeopen opens a path beneath a directory with no way out
// between the check and the use, and opens further descriptors of what it
// opened without going through a path again.
//
// The userspace backend opens files and devices named by a p-dev, as root,
// inside directories the operator allowed. Whoever can write in such a
// directory can rename, replace and symlink the names in it while the
// backend works. Checking a path (EvalSymlinks, stat) and then opening it by
// name leaves a window in which a component becomes a symlink to anywhere
// (the campaign of issue 14: 161 of 1164 opens wrote guest data outside
// the allowed directory). So the check and the open are one system call:
// openat2(2) with RESOLVE_BENEATH relative to a descriptor of the allowed
// directory, which the kernel enforces on every component, symlink and
// ".." of the walk. The result is an O_PATH descriptor: it pins the inode
// without opening the file, so a FIFO, a tape or a watchdog is not
// touched before its type is known. Reopen then opens that very inode
// with the wanted access (through /proc/self/fd, checked by device and
// inode number).
package safeopen

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrEscape is wrapped when the walk would leave the directory: ".." above
// it, an absolute symlink, a symlink whose target lies outside, a magic
// link (/proc/self/fd/N), or a symlink where Symlinks is false.
var ErrEscape = errors.New("path leaves its allowed directory")

// ErrNoOpenat2 is wrapped when the kernel has no openat2(2) (Linux before
// 5.6, or a seccomp filter that hides it). Nothing is opened then: there is
// no race-free way to keep a path beneath a directory without it.
var ErrNoOpenat2 = errors.New("openat2(2) is not available (Linux 5.6 or later is needed to open p-devs beneath allow_paths without a symlink race)")

// openat2 is the seam tests replace to play an old kernel.
var openat2 = unix.Openat2

// maxRetries bounds the EAGAIN retries: the kernel returns EAGAIN when a
// rename or mount elsewhere raced a ".." in the walk, and a hostile
// renamer could make it do so for ever.
const maxRetries = 64

// Beneath opens rel, a relative clean path, beneath the directory dir and
// returns an O_PATH descriptor of what it names (the caller closes it).
// dir itself is opened by its path: it is the operator's, trusted like
// the configuration that names it. Symlinks inside are followed only while
// they stay beneath dir (relative ones; the kernel refuses absolute ones
// under RESOLVE_BENEATH) when symlinks is true, and refused otherwise;
// magic links are always refused.
func Beneath(dir, rel string, symlinks bool) (*os.File, error) {
	name := dir + "/" + rel
	if rel == "" || rel[0] == '/' {
		return nil, fmt.Errorf("safeopen: %q is not a relative path", rel)
	}
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("safeopen: allowed directory %s: %w", dir, err)
	}
	defer unix.Close(d)
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	if !symlinks {
		how.Resolve |= unix.RESOLVE_NO_SYMLINKS
	}
	for try := 0; ; try++ {
		fd, err := openat2(d, rel, &how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), name), nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN) && try < maxRetries:
			continue
		case errors.Is(err, unix.ENOSYS):
			return nil, fmt.Errorf("safeopen: %s: %w", name, ErrNoOpenat2)
		case errors.Is(err, unix.EXDEV):
			return nil, fmt.Errorf("safeopen: %s: %w %s (through \"..\", an absolute symlink or a symlink to outside it)", name, ErrEscape, dir)
		case errors.Is(err, unix.ELOOP) && !symlinks:
			return nil, fmt.Errorf("safeopen: %s: %w %s: a symlink is on the way, and none is allowed here", name, ErrEscape, dir)
		case errors.Is(err, unix.ELOOP):
			return nil, fmt.Errorf("safeopen: %s: a magic link or too many symlinks on the way: %w (%w)", name, ErrEscape, err)
		default:
			return nil, fmt.Errorf("safeopen: %s: %w", name, &os.PathError{Op: "openat2", Path: name, Err: err})
		}
	}
}

// Available reports whether the kernel has openat2(2), for a start-up log
// line; Beneath refuses with ErrNoOpenat2 on its own.
func Available() bool {
	fd, err := openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	if err == nil {
		unix.Close(fd)
	}
	return !errors.Is(err, unix.ENOSYS)
}

// Reopen opens the inode behind f (an O_PATH or any other descriptor) again
// with flag (os.O_RDWR, unix.O_DIRECT, ...; O_CLOEXEC is added), as
// os.OpenFile would, but through f's /proc/self/fd entry rather than a
// path anyone can swap. It checks that the new descriptor is the same
// inode (device and inode number), so a /proc that is missing or not the
// real one cannot hand over something else.
func Reopen(f *os.File, flag int) (*os.File, error) {
	var want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &want); err != nil {
		return nil, fmt.Errorf("safeopen: fstat %s: %w", f.Name(), err)
	}
	proc := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	var fd int
	var err error
	for {
		fd, err = unix.Open(proc, flag|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("safeopen: reopen %s: %w", f.Name(), &os.PathError{Op: "open", Path: f.Name(), Err: err})
	}
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("safeopen: fstat reopened %s: %w", f.Name(), err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino || got.Rdev != want.Rdev {
		unix.Close(fd)
		return nil, fmt.Errorf("safeopen: reopening %s through %s gave another file (dev/ino %d/%d, want %d/%d): is /proc mounted?",
			f.Name(), proc, got.Dev, got.Ino, want.Dev, want.Ino)
	}
	// os.NewFile, like os.OpenFile, puts a pollable (O_NONBLOCK character
	// device) descriptor into the netpoller and leaves files blocking.
	return os.NewFile(uintptr(fd), f.Name()), nil
}
