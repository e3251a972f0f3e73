package autoattach

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/govscsi/govscsi/cfgparse"
)

// DefaultConfigDirs are where xendomains (and most hosts) keep xl domain
// configs: /etc/xen/auto holds symlinks to (or copies of) the configs of
// domains started at boot, /etc/xen the rest.
var DefaultConfigDirs = []string{"/etc/xen", "/etc/xen/auto"}

// maxConfigSize bounds the files read as configs: xl configs are small,
// and a stray disk image in /etc/xen must not be slurped into memory.
const maxConfigSize = 1 << 20

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

// scanConfigs reads every regular file of dirs (symlinks followed, one
// level, no recursion) that parses as an xl config with a string name=.
// The same file reached twice (a /etc/xen/auto symlink to /etc/xen/x.cfg)
// counts once. Unparsable files are reported through skipped (they may be
// xl.conf, scripts, README, ...); a missing directory is not an error.
func scanConfigs(dirs []string, skipped func(path string, err error)) ([]candidate, error) {
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
			if err != nil || !st.Mode().IsRegular() || st.Size() > maxConfigSize {
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
			c, err := cfgparse.ParseFile(p)
			if err != nil {
				if skipped != nil {
					skipped(p, err)
				}
				continue
			}
			name, _, err := c.GetString("name")
			if err != nil || name == "" {
				continue
			}
			uuid, _, _ := c.GetString("uuid")
			out = append(out, candidate{Path: p, Name: name, UUID: normUUID(uuid)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// match returns the candidates for a domain called name whose uuid (from
// /local/domain/<id>/vm, normalised; "" if unknown) is uuid: the name must
// be equal, and a config that sets uuid= must agree with the domain's.
func match(cands []candidate, name, uuid string) []candidate {
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
