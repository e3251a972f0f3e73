// Package opfile reads the files an operator hands the tools (xl domain
// configs, the YAML configurations) without letting a wrong or hostile
// path hang or exhaust the process: only regular files are read, and only
// up to a size limit. A FIFO would block the reader for ever, /dev/zero or
// a growing file would grow memory until the OOM killer came (issue 14);
// the kernel reports both before a byte is read.
package opfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// MaxConfigSize bounds every configuration file the tools read (xl domain
// configs, the YAML configurations): real ones are a few KiB.
const MaxConfigSize = 1 << 20

// ErrTooLarge is wrapped when a file is larger than the reader's limit.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular is wrapped when the path names something other than a
// regular file (a FIFO, a device, a directory, a socket).
var ErrNotRegular = errors.New("not a regular file")

// Read returns the contents of the regular file path, at most limit bytes
// (/dev/null reads as empty).
// what names the file's role in errors ("xl config", "config"). Errors
// wrap fs.ErrNotExist (missing file), ErrNotRegular or ErrTooLarge and name
// the path and the limit.
func Read(what, path string, limit int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer; the type check below then refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if isDevNull(fi) {
		return []byte{}, nil // the usual way to say "an empty configuration"
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: %w (%s)", what, path, ErrNotRegular, kind(fi.Mode()))
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s %s: %w: %d bytes, the limit is %d", what, path, ErrTooLarge, fi.Size(), limit)
	}
	// The file may grow while it is read: read one byte past the limit to
	// see it.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s %s: %w: more than %d bytes (it grew while read)", what, path, ErrTooLarge, limit)
	}
	return data, nil
}

// isDevNull tells the null device (character 1:3) from other devices.
func isDevNull(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && unix.Major(st.Rdev) == 1 && unix.Minor(st.Rdev) == 3
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}
