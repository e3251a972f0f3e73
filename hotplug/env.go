package hotplug

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/govscsi/govscsi/cfgparse"
)

// BackendRef names one vhost's backend directory.
type BackendRef struct {
	// Home is the backend domain's home for an absolute XENBUS_PATH
	// ("/local/domain/0"); empty for the usual relative one, which
	// xenstored resolves against the caller's own home.
	Home string
	// Type is the backend type directory: "vscsi" (xen-scsiback, and the
	// meaning of ""), "vscsiu" (govscsi's userspace backend), or another
	// valid name (cfgparse.ValidBackendType) set with --backend-type.
	Type  string
	Domid uint32 // the frontend domain
	DevID int    // the vhost's device id
}

// BackendType is b.Type, or cfgparse.TypeKernel ("vscsi") if empty.
func (b BackendRef) BackendType() string {
	if b.Type == "" {
		return cfgparse.TypeKernel
	}
	return b.Type
}

// Userspace tells whether the vhost is served by govscsi's userspace
// backend under its own type (vscsiu), which opens p-dev itself: there is
// nothing to prepare for it, whatever the configured flavour.
func (b BackendRef) Userspace() bool { return b.BackendType() == cfgparse.TypeUserspace }

// Rel is the path as libxl and the kernel pass it: backend/<type>/<domid>/<devid>.
func (b BackendRef) Rel() string {
	return fmt.Sprintf("backend/%s/%d/%d", b.BackendType(), b.Domid, b.DevID)
}

// Path is the path to use with xenstore.
func (b BackendRef) Path() string {
	if b.Home == "" {
		return b.Rel()
	}
	return b.Home + "/" + b.Rel()
}

// Invocation is one run of the script: the action and the device, from
// the command line and the environment libxl, xl-vscsi or udev set.
type Invocation struct {
	Action     string // "add" or "remove"
	XenbusPath string // as given
	Backend    BackendRef
	// UdevCall is set when udev runs the script (UDEV_CALL=1 in the rule).
	UdevCall bool
}

// UsageError is a bad invocation: the script was called wrongly, so there
// is no trustworthy backend path to report the error under.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

var (
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	absXenbus   = regexp.MustCompile(`^(/local/domain/[0-9]+)/(backend/.*)$`)
	maxDomid    = uint64(0x7FEF) // DOMID_FIRST_RESERVED - 1
	maxVHostDev = uint64(1<<31 - 1)
)

// ParseInvocation reads an invocation the way Xen's hotplug scripts do
// (findCommand in xen-script-common.sh): arguments of the form NAME=value
// set environment variables, the first other argument is the command; with
// none, udev's ACTION is used. getenv reads the process environment.
// Errors are *UsageError and name the bad token.
func ParseInvocation(args []string, getenv func(string) string) (Invocation, error) {
	env := map[string]string{}
	get := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return getenv(k)
	}
	var inv Invocation
	for _, a := range args {
		if i := strings.IndexByte(a, '='); i > 0 && envName.MatchString(a[:i]) {
			env[a[:i]] = a[i+1:]
			continue
		}
		if inv.Action == "" {
			inv.Action = a
		}
	}
	if inv.Action == "" {
		inv.Action = get("ACTION")
	}
	switch inv.Action {
	case "add", "remove":
	case "":
		return inv, &UsageError{"no command: want add or remove (as an argument or udev's ACTION)"}
	default:
		return inv, &UsageError{fmt.Sprintf("unknown command %q: want add or remove", inv.Action)}
	}
	inv.UdevCall = get("UDEV_CALL") != ""
	typ := get("XENBUS_TYPE")
	if typ != "" {
		if err := cfgparse.ValidBackendType(typ); err != nil {
			return inv, &UsageError{fmt.Sprintf("XENBUS_TYPE %q: %v", typ, err)}
		}
	}
	if b := get("XENBUS_BASE_PATH"); b != "" && b != "backend" {
		return inv, &UsageError{fmt.Sprintf("XENBUS_BASE_PATH %q: want backend", b)}
	}
	inv.XenbusPath = get("XENBUS_PATH")
	b, err := ParseXenbusPath(inv.XenbusPath)
	if err != nil {
		return inv, err
	}
	// libxl, xl-vscsi and the kernel's uevent set both; a disagreement is
	// a broken caller, and guessing which one is right could prepare the
	// wrong backend's devices.
	if typ != "" && typ != b.Type {
		return inv, &UsageError{fmt.Sprintf("XENBUS_TYPE %q but XENBUS_PATH %q is under backend/%s", typ, inv.XenbusPath, b.Type)}
	}
	inv.Backend = b
	return inv, nil
}

// ParseXenbusPath accepts backend/<type>/<domid>/<devid> (relative, as
// libxl and the kernel pass it) or the same under /local/domain/<n>/.
// <type> is any valid backend type name (cfgparse.ValidBackendType):
// "vscsi" for xen-scsiback, "vscsiu" for govscsi's userspace backend.
func ParseXenbusPath(p string) (BackendRef, error) {
	var b BackendRef
	if p == "" {
		return b, &UsageError{"XENBUS_PATH is not set (want backend/<type>/<domid>/<devid>, type vscsi or vscsiu)"}
	}
	rel := p
	if m := absXenbus.FindStringSubmatch(p); m != nil {
		b.Home, rel = m[1], m[2]
	}
	f := strings.Split(rel, "/")
	if len(f) != 4 || f[0] != "backend" {
		return b, &UsageError{fmt.Sprintf("XENBUS_PATH %q: want backend/<type>/<domid>/<devid> (type vscsi or vscsiu)", p)}
	}
	if err := cfgparse.ValidBackendType(f[1]); err != nil {
		return b, &UsageError{fmt.Sprintf("XENBUS_PATH %q: %v", p, err)}
	}
	b.Type = f[1]
	d, err := decimal(f[2], maxDomid)
	if err != nil {
		return b, &UsageError{fmt.Sprintf("XENBUS_PATH %q: domid %q: %v", p, f[2], err)}
	}
	v, err := decimal(f[3], maxVHostDev)
	if err != nil {
		return b, &UsageError{fmt.Sprintf("XENBUS_PATH %q: devid %q: %v", p, f[3], err)}
	}
	b.Domid, b.DevID = uint32(d), int(v)
	return b, nil
}

func decimal(s string, max uint64) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a decimal number")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("out of range (max %d)", max)
	}
	return n, nil
}
