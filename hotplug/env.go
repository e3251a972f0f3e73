package hotplug

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// BackendRef names one vhost's backend directory.
type BackendRef struct {
	// Home is the backend domain's home for an absolute XENBUS_PATH
	// ("/local/domain/0"); empty for the usual relative one, which
	// xenstored resolves against the caller's own home.
	Home  string
	Domid uint32 // the frontend domain
	DevID int    // the vhost's device id
}

// Rel is the path as libxl and the kernel pass it: backend/vscsi/<domid>/<devid>.
func (b BackendRef) Rel() string { return fmt.Sprintf("backend/vscsi/%d/%d", b.Domid, b.DevID) }

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
	if t := get("XENBUS_TYPE"); t != "" && t != "vscsi" {
		return inv, &UsageError{fmt.Sprintf("XENBUS_TYPE %q: this script handles vscsi only", t)}
	}
	if b := get("XENBUS_BASE_PATH"); b != "" && b != "backend" {
		return inv, &UsageError{fmt.Sprintf("XENBUS_BASE_PATH %q: want backend", b)}
	}
	inv.XenbusPath = get("XENBUS_PATH")
	b, err := ParseXenbusPath(inv.XenbusPath)
	if err != nil {
		return inv, err
	}
	inv.Backend = b
	return inv, nil
}

// ParseXenbusPath accepts backend/vscsi/<domid>/<devid> (relative, as
// libxl and the kernel pass it) or the same under /local/domain/<n>/.
func ParseXenbusPath(p string) (BackendRef, error) {
	var b BackendRef
	if p == "" {
		return b, &UsageError{"XENBUS_PATH is not set (want backend/vscsi/<domid>/<devid>)"}
	}
	rel := p
	if m := absXenbus.FindStringSubmatch(p); m != nil {
		b.Home, rel = m[1], m[2]
	}
	f := strings.Split(rel, "/")
	if len(f) != 4 || f[0] != "backend" || f[1] != "vscsi" {
		return b, &UsageError{fmt.Sprintf("XENBUS_PATH %q: want backend/vscsi/<domid>/<devid>", p)}
	}
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
