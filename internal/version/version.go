// Package version is govscsi's version. Its one source is the VERSION file
// next to this one: embedded here, read by the Makefile (`make build`, `lib`,
// `install`, `deb`) for the .pc file and the Debian package, and stamped into
// the binaries and libgovscsi.so with
//
//	-ldflags -X github.com/govscsi/govscsi/internal/version.stamped=$(VERSION)
//
// so that `make deb VERSION=1.2.3` builds programs that say 1.2.3 too.
package version

import (
	_ "embed"
	"strings"
)

//go:embed VERSION
var file string

// stamped is set by the linker (-X); empty in a plain go build or test.
var stamped string

// String is the version: the stamped one if the build set it, else the
// VERSION file's.
func String() string {
	if stamped != "" {
		return stamped
	}
	return strings.TrimSpace(file)
}
