package hotplug

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ConfigFS is the handful of file operations LIO's configfs interface
// needs. The kernel gives configfs special semantics (a mkdir creates an
// item with its attribute files and default groups, an rmdir removes an
// item together with its attributes), so the real tree and a test fixture
// are two implementations of this interface rather than one os.* call
// site with an injected root.
type ConfigFS interface {
	// Mkdir creates one directory (an LIO item); an existing one is an
	// error wrapping fs.ErrExist.
	Mkdir(path string) error
	// Rmdir removes an item; one that still has children or links is an
	// error (ENOTEMPTY or EBUSY from the kernel).
	Rmdir(path string) error
	// Symlink creates link pointing at target (LIO "port" links).
	Symlink(target, link string) error
	// Unlink removes a symlink.
	Unlink(link string) error
	// WriteAttr writes value (plus a newline) to an attribute file.
	WriteAttr(path, value string) error
	// ReadAttr returns an attribute's value without trailing newlines.
	ReadAttr(path string) (string, error)
	// Readlink returns a symlink's target.
	Readlink(path string) (string, error)
	// ReadDir lists a directory, sorted by name.
	ReadDir(path string) ([]fs.DirEntry, error)
	// Lstat stats a path without following a final symlink.
	Lstat(path string) (fs.FileInfo, error)
}

// OSConfigFS is the real configfs (or any tree with real-configfs
// semantics) through plain system calls.
type OSConfigFS struct{}

func (OSConfigFS) Mkdir(p string) error              { return os.Mkdir(p, 0o755) }
func (OSConfigFS) Rmdir(p string) error              { return syscall.Rmdir(p) }
func (OSConfigFS) Symlink(target, link string) error { return os.Symlink(target, link) }
func (OSConfigFS) Unlink(link string) error          { return os.Remove(link) }
func (OSConfigFS) Readlink(p string) (string, error) { return os.Readlink(p) }
func (OSConfigFS) Lstat(p string) (fs.FileInfo, error) {
	return os.Lstat(p)
}
func (OSConfigFS) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(p) }

// WriteAttr opens the attribute without O_CREAT: configfs attributes exist
// from the moment their item does, so a missing file means a wrong path,
// which must fail rather than leave a stray file.
func (OSConfigFS) WriteAttr(p, v string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(v + "\n"))
	cerr := f.Close()
	if werr != nil {
		return &fs.PathError{Op: "write", Path: p, Err: werr}
	}
	return cerr
}

func (OSConfigFS) ReadAttr(p string) (string, error) {
	b, err := os.ReadFile(p)
	return strings.TrimRight(string(b), "\n\x00"), err
}

// FixtureConfigFS imitates configfs on an ordinary directory tree so that
// the LIO logic can be tested without the target modules:
//   - Mkdir of a TPG (tpgt_N) also creates its default groups lun/ and
//     param/, as the kernel does;
//   - WriteAttr creates the file (the kernel would have made it with the
//     item);
//   - Rmdir removes the item's attribute files and empty default groups
//     first, and refuses (ENOTEMPTY) while it holds other directories or
//     symlinks, as configfs does for an item with children or links;
//   - Fail, if set, is asked before every operation and can inject an
//     error (a refused control string, a busy LUN, ...).
//
// What it cannot imitate (the kernel parsing control strings, filling info
// and udev_path, dropping a nexus) is left to the Xen rig (tests/e2e).
type FixtureConfigFS struct {
	Fail func(op, path string) error
}

// fixtureDefaultGroups are the configfs default groups the LIO code relies
// on existing after a mkdir.
var fixtureDefaultGroups = map[string][]string{"tpgt_": {"lun", "param"}}

func (f FixtureConfigFS) fail(op, p string) error {
	if f.Fail == nil {
		return nil
	}
	if err := f.Fail(op, p); err != nil {
		return &fs.PathError{Op: op, Path: p, Err: err}
	}
	return nil
}

func defaultGroups(p string) []string {
	base := filepath.Base(p)
	for prefix, gs := range fixtureDefaultGroups {
		if strings.HasPrefix(base, prefix) {
			return gs
		}
	}
	return nil
}

func (f FixtureConfigFS) Mkdir(p string) error {
	if err := f.fail("mkdir", p); err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		return err
	}
	for _, g := range defaultGroups(p) {
		if err := os.Mkdir(filepath.Join(p, g), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (f FixtureConfigFS) Rmdir(p string) error {
	if err := f.fail("rmdir", p); err != nil {
		return err
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	isDefault := map[string]bool{}
	for _, g := range defaultGroups(p) {
		isDefault[g] = true
	}
	var files, groups []string
	for _, e := range ents {
		full := filepath.Join(p, e.Name())
		switch {
		case e.Type().IsRegular():
			files = append(files, full)
		case e.IsDir() && isDefault[e.Name()]:
			sub, err := os.ReadDir(full)
			if err != nil {
				return err
			}
			for _, s := range sub {
				if !s.Type().IsRegular() {
					return &fs.PathError{Op: "rmdir", Path: p, Err: syscall.ENOTEMPTY}
				}
				files = append(files, filepath.Join(full, s.Name()))
			}
			groups = append(groups, full)
		default:
			return &fs.PathError{Op: "rmdir", Path: p, Err: syscall.ENOTEMPTY}
		}
	}
	for _, x := range files {
		if err := os.Remove(x); err != nil {
			return err
		}
	}
	for _, g := range groups {
		if err := os.Remove(g); err != nil {
			return err
		}
	}
	return os.Remove(p)
}

func (f FixtureConfigFS) Symlink(target, link string) error {
	if err := f.fail("symlink", link); err != nil {
		return err
	}
	return os.Symlink(target, link)
}

func (f FixtureConfigFS) Unlink(link string) error {
	if err := f.fail("unlink", link); err != nil {
		return err
	}
	fi, err := os.Lstat(link)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return &fs.PathError{Op: "unlink", Path: link, Err: errors.New("not a symlink")}
	}
	return os.Remove(link)
}

func (f FixtureConfigFS) WriteAttr(p, v string) error {
	if err := f.fail("write", p); err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
		return fmt.Errorf("write %s: item does not exist: %w", p, fs.ErrNotExist)
	}
	return os.WriteFile(p, []byte(v+"\n"), 0o644)
}

func (f FixtureConfigFS) ReadAttr(p string) (string, error) {
	if err := f.fail("read", p); err != nil {
		return "", err
	}
	return OSConfigFS{}.ReadAttr(p)
}

func (FixtureConfigFS) Readlink(p string) (string, error)       { return os.Readlink(p) }
func (FixtureConfigFS) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(p) }
func (FixtureConfigFS) Lstat(p string) (fs.FileInfo, error)     { return os.Lstat(p) }
