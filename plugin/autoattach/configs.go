package autoattach

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/internal/opfile"
)

// DefaultConfigDirs are where xendomains (and most hosts) keep xl domain
// configs: /etc/xen/auto holds symlinks to (or copies of) the configs of
// domains started at boot, /etc/xen the rest.
var DefaultConfigDirs = []string{"/etc/xen", "/etc/xen/auto"}

// candidate is one xl config file that names a domain.
type candidate struct {
	Path string // the path as found (first directory wins for duplicates)
	Name string // name=
	UUID string // uuid=, normalised (lower case, no dashes); "" if unset
}

// skipFile reports files that are not configs by convention: hidden
// files, editor backups and the leftovers of package managers.
func skipFile(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") || strings.HasSuffix(name, ".bak") ||
		strings.HasSuffix(name, ".swp") {
		return true
	}
	for _, s := range []string{".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".ucf-old", ".ucf-new", ".ucf-dist", ".rpmsave", ".rpmnew"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// normUUID makes UUIDs comparable: xl accepts them in either case, and
// /vm/<uuid> is lower case with dashes.
func normUUID(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
}

// configIndex remembers what each config file said, keyed by the file's
// identity and modification (device, inode, size, mtime), so a scan after
// @introduceDomain re-parses only what changed: the domain is held (or,
// without holds, racing xl's unpause) while the watcher decides, and an
// xl config parse is the slowest step before the hold.
type configIndex struct {
	mu    sync.Mutex
	files map[string]indexed // by absolute real path
}

type fileKey struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

type indexed struct {
	key  fileKey
	cand candidate // Name is "" when the file is not a config with a name=
	err  error     // why the file is not a config (for skipped)
	// The vscsi list, parsed once.
	entries []cfgparse.Entry
	warns   []cfgparse.Warning
	specErr error
}

func keyOf(st fs.FileInfo) fileKey {
	k := fileKey{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(sys.Dev), sys.Ino
	}
	return k
}

// scan reads every regular file of dirs (symlinks followed, one level, no
// recursion) that parses as an xl config with a string name=. The same
// file reached twice (a /etc/xen/auto symlink to /etc/xen/x.cfg) counts
// once. Unparsable files are reported through skipped (they may be
// xl.conf, scripts, README, ...); a missing directory is not an error.
func (ix *configIndex) scan(dirs []string, skipped func(path string, err error)) ([]candidate, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.files == nil {
		ix.files = map[string]indexed{}
	}
	var out []candidate
	seen := map[string]bool{}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("reading config directory %s: %w", dir, err)
		}
		for _, e := range ents {
			if skipFile(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			st, err := os.Stat(p) // follows symlinks
			if err != nil || !st.Mode().IsRegular() || st.Size() > opfile.MaxConfigSize {
				continue
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				continue
			}
			if real, err = filepath.Abs(real); err != nil || seen[real] {
				continue
			}
			seen[real] = true
			f, ok := ix.files[real]
			if k := keyOf(st); !ok || f.key != k {
				f = parseIndexed(p, k)
				ix.files[real] = f
			}
			if f.err != nil {
				if skipped != nil {
					skipped(p, f.err)
				}
				continue
			}
			if f.cand.Name == "" {
				continue
			}
			c := f.cand
			c.Path = p
			out = append(out, c)
		}
	}
	for real := range ix.files {
		if !seen[real] {
			delete(ix.files, real) // gone or no longer in the directories
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func parseIndexed(p string, k fileKey) indexed {
	f := indexed{key: k}
	c, err := cfgparse.ParseFile(p)
	if err != nil {
		f.err = err
		return f
	}
	name, _, err := c.GetString("name")
	if err != nil || name == "" {
		return f
	}
	uuid, _, _ := c.GetString("uuid")
	f.cand = candidate{Name: name, UUID: normUUID(uuid)}
	items, pos, err := c.GetStringList("vscsi")
	switch {
	case errors.Is(err, cfgparse.ErrNotFound):
	case err != nil:
		f.specErr = err
	default:
		f.entries, f.warns, f.specErr = cfgparse.ParseSpecs(items, pos)
	}
	return f
}

// specs returns the parsed vscsi list of a candidate found by the last
// scan: what cfgparse.ConfigSpecs would return for it, without parsing
// the file again.
func (ix *configIndex) specs(c candidate) ([]cfgparse.Entry, []cfgparse.Warning, error) {
	real, err := filepath.EvalSymlinks(c.Path)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	ix.mu.Lock()
	f, ok := ix.files[real]
	ix.mu.Unlock()
	if err != nil || !ok {
		return cfgparse.ConfigSpecs(c.Path)
	}
	return f.entries, f.warns, f.specErr
}

// incomingSuffix is what xl migrate-receive appends to the name of the
// domain it is receiving until the sender lets it go ("<name>--incoming";
// tools/xl/xl_migrate.c). The domain is held and attached under that name,
// before it runs, so it is matched as <name>.
const incomingSuffix = "--incoming"

// configName is the name= a domain called name was created from.
func configName(name string) string { return strings.TrimSuffix(name, incomingSuffix) }

// match returns the candidates for a domain called name whose uuid (from
// /local/domain/<id>/vm, normalised; "" if unknown) is uuid: the name must
// be equal (an incoming migration's "<name>--incoming" counts as <name>),
// and a config that sets uuid= must agree with the domain's.
func match(cands []candidate, name, uuid string) []candidate {
	name = configName(name)
	var out []candidate
	for _, c := range cands {
		if c.Name != name {
			continue
		}
		if c.UUID != "" && uuid != "" && c.UUID != uuid {
			continue
		}
		out = append(out, c)
	}
	return out
}

// FindConfig returns the one xl config among dirs that names a domain
// called name (an incoming migration's "<name>--incoming" counts as
// <name>) whose uuid is uuid ("" if unknown), as the watcher chooses it:
// "" and no error when none does, an error naming them when several do.
// xl-vscsi restore and migrate-receive use it to find the vscsi= entries
// of a domain whose save image carries only libxl's JSON configuration.
func FindConfig(dirs []string, name, uuid string) (string, error) {
	var ix configIndex
	cands, err := ix.scan(dirs, nil)
	if err != nil {
		return "", err
	}
	m := match(cands, name, normUUID(uuid))
	switch len(m) {
	case 0:
		return "", nil
	case 1:
		return m[0].Path, nil
	}
	var paths []string
	for _, c := range m {
		paths = append(paths, c.Path)
	}
	return "", fmt.Errorf("several xl configs name domain %q: %s (set uuid= in the right one, or remove the others)", name, strings.Join(paths, ", "))
}
