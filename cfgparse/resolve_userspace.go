package cfgparse

import (
	"errors"
	"fmt"
	"strings"

	"github.com/govscsi/govscsi/backend/lunconf"
)

// This file renders p-devs for the userspace backend (FlavourUserspace,
// docs/backend.md §2). Nothing is looked up on the host: the daemon opens
// the p-dev itself, under its own allow-list, so the toolstack writes it as
// the user gave it. The syntax is checked here with the backend's own
// parser (backend/lunconf, pure Go), so a p-dev the daemon would refuse
// never reaches xenstore.

// ErrLUNSyntax is a p-dev (or a LUN option) the userspace backend's
// parser refuses.
var ErrLUNSyntax = errors.New("p-dev not accepted by the userspace backend")

// lunOptions are the spec options that become p-dev options of the
// userspace backend, in the order they are appended.
var lunOptions = []struct {
	name  string
	isSet func(*Spec) bool
}{
	{"ro", func(s *Spec) bool { return s.ReadOnly }},
	{"direct", func(s *Spec) bool { return s.Direct }},
	{"raw", func(s *Spec) bool { return s.Raw }},
}

// LUNOptions returns the userspace-only options set in s ("ro", "direct",
// "raw"), in p-dev order.
func (s Spec) LUNOptions() []string {
	var out []string
	for _, o := range lunOptions {
		if o.isSet(&s) {
			out = append(out, o.name)
		}
	}
	return out
}

// isLUNForm reports whether t starts with one of the userspace backend's
// own p-dev prefixes (the /dev/... form is shared with the kernel flavours).
func isLUNForm(t string) bool {
	for _, p := range []string{"file:", "ram:", "block:", "sg:"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// resolveUserspace returns the p-dev for the userspace backend: the pdev
// as written, then ",<opt>" for each LUN option. p-devname is the device
// path for the /dev forms (plain, block:, sg:), as for the kernel
// flavours. When an option is what the backend refuses (",direct" on a
// file), badOpt names it.
func resolveUserspace(p PDev, opts []string) (PDevValue, []string, error) {
	v, _, err := resolveUserspaceOpts(p, opts)
	return v, nil, err
}

func resolveUserspaceOpts(p PDev, opts []string) (v PDevValue, badOpt string, err error) {
	pdev := p.String()
	fail := func(tok string, detail string, cause error) (PDevValue, string, error) {
		return PDevValue{}, tok, &ResolveError{PDev: pdev, Kind: ErrLUNSyntax, Detail: detail, Err: cause}
	}
	switch p.Kind {
	case PDevHCTL, PDevNAA:
		return PDevValue{}, "", &ResolveError{PDev: pdev, Kind: ErrFlavourPDev,
			Detail: fmt.Sprintf("%q names a kernel (xen-scsiback/LIO) device; the userspace backend takes /dev/..., block:/dev/..., sg:/dev/..., file:/path or ram:<size>", pdev)}
	case PDevPath, PDevLUN:
	default:
		return PDevValue{}, "", &ResolveError{PDev: pdev, Kind: ErrFlavourPDev, Detail: "empty pdev"}
	}
	spec, err := lunconf.Parse(pdev)
	if err != nil {
		return fail("", "", err)
	}
	full := pdev
	for _, o := range opts {
		full += "," + o
		if spec, err = lunconf.Parse(full); err != nil {
			return fail(o, fmt.Sprintf("option %s", o), err)
		}
	}
	v = PDevValue{PDev: full}
	switch spec.Kind {
	case lunconf.KindDevice, lunconf.KindBlock, lunconf.KindSG:
		v.PDevName = spec.Path
	}
	return v, "", nil
}
