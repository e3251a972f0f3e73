package cfgparse

import (
	"errors"
	"fmt"
)

// This file connects the pieces: the vscsi list of an xl config -> parsed
// entries -> resolved devices -> a grouped plan.

// Entry is a parsed spec together with where it came from.
type Entry struct {
	Origin
	Parsed Spec
}

// ParseSpecs parses the items of a vscsi list. pos, if not nil, holds each
// item's position in the config (as returned by Config.GetStringList).
// All bad items are reported: the error joins one *SpecError per item.
func ParseSpecs(texts []string, pos []Pos) ([]Entry, []Warning, error) {
	var (
		out   []Entry
		warns []Warning
		errs  []error
	)
	for i, t := range texts {
		o := Origin{Entry: i, Spec: t}
		if i < len(pos) {
			o.Pos = pos[i]
		}
		s, w, err := parseSpec(o)
		warns = append(warns, w...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, Entry{Origin: o, Parsed: s})
	}
	if len(errs) > 0 {
		return nil, warns, errors.Join(errs...)
	}
	return out, warns, nil
}

// ConfigSpecs reads an xl config file and parses its vscsi list. A config
// without `vscsi` gives no entries and no error.
func ConfigSpecs(path string) ([]Entry, []Warning, error) {
	c, err := ParseFile(path)
	if err != nil {
		return nil, nil, err
	}
	items, pos, err := c.GetStringList("vscsi")
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return ParseSpecs(items, pos)
}

// Devices resolves entries for backend flavour f. Every failing entry is
// reported as a *SpecError (Token = the pdev) wrapping a *ResolveError;
// flavour-specific advice comes back as warnings.
func (r *Resolver) Devices(entries []Entry, f Flavour) ([]Device, []Warning, error) {
	var (
		out   []Device
		warns []Warning
		errs  []error
	)
	for _, e := range entries {
		pdev := e.Parsed.PDev.String()
		if opts := e.Parsed.LUNOptions(); len(opts) > 0 && f != FlavourUserspace {
			errs = append(errs, &SpecError{Origin: e.Origin, Token: opts[0],
				Msg: fmt.Sprintf("option is for the userspace backend (flavour userspace), not flavour %s", f)})
			continue
		}
		var (
			v     PDevValue
			notes []string
			err   error
		)
		if f == FlavourUserspace {
			var badOpt string
			v, badOpt, err = resolveUserspaceOpts(e.Parsed.PDev, e.Parsed.LUNOptions())
			if err != nil && badOpt != "" {
				errs = append(errs, &SpecError{Origin: e.Origin, Token: badOpt, Msg: "option not usable with this pdev", Err: err})
				continue
			}
			if err == nil && e.Parsed.FeatureHost {
				warns = append(warns, Warning{Origin: e.Origin, Token: "feature-host",
					Msg: "the userspace backend ignores feature-host; use the option raw for unfiltered SG_IO pass-through"})
			}
		} else {
			v, notes, err = r.Resolve(e.Parsed.PDev, f)
		}
		for _, n := range notes {
			warns = append(warns, Warning{Origin: e.Origin, Token: pdev, Msg: n})
		}
		if err != nil {
			errs = append(errs, &SpecError{Origin: e.Origin, Token: pdev, Msg: fmt.Sprintf("pdev cannot be resolved for backend flavour %s", f), Err: err})
			continue
		}
		if e.Parsed.FeatureHost && f == FlavourKernel {
			warns = append(warns, Warning{Origin: e.Origin, Token: "feature-host",
				Msg: "xen-scsiback (flavour kernel) ignores feature-host; it is written for other backends"})
		}
		out = append(out, Device{Origin: e.Origin, VDev: e.Parsed.VDev, PDev: v.PDev, PDevName: v.PDevName, FeatureHost: e.Parsed.FeatureHost})
	}
	if len(errs) > 0 {
		return nil, warns, errors.Join(errs...)
	}
	return out, warns, nil
}
