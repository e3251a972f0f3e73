package cfgparse

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/govscsi/govscsi/backend/lunconf"
)

// This file parses one vscsi spec, "pdev,vdev[,option...]", the items of
// the xl.cfg list `vscsi = [ ... ]`. The accepted language follows SUSE's
// libxlutil (xlu_vscsi_parse) with stricter checks; docs/vscsi-syntax.md is
// the user-facing description and must change together with this file.

// Limits that come from the wire protocol and the backends, not from taste.
const (
	// MaxVDevField bounds v-dev channel, target and LUN: they travel in the
	// 16-bit chn/id/lun fields of struct vscsiif_request (protocol.md P11).
	MaxVDevField = 1<<16 - 1

	// Linux xen-scsifront registers its Scsi_Host with max_channel 0,
	// max_id 64 and max_lun 255; devices outside that box are not probed
	// by a guest-side rescan, so they only draw a warning.
	FrontMaxChannel = 0
	FrontMaxTarget  = 63
	FrontMaxLUN     = 254

	// MaxNAAPDevLen is the longest p-dev string xen-scsiback can match:
	// it copies p-dev into a VSCSI_NAMELEN (32) buffer, NUL included, and
	// LIO target port names must be shorter than 32 bytes too (P6).
	MaxNAAPDevLen = 31
)

// HCTL is a SCSI address host:channel:target:lun. Host, channel and target
// are 32-bit as in Linux and libxl; the LUN is 64-bit.
type HCTL struct {
	Host, Channel, Target uint32
	LUN                   uint64
}

// String renders h the way the vscsiif xenstore keys hold it: decimal
// "h:c:t:l".
func (h HCTL) String() string {
	return fmt.Sprintf("%d:%d:%d:%d", h.Host, h.Channel, h.Target, h.LUN)
}

// ParseHCTL parses "h:c:t:l": exactly four unsigned decimal fields (no
// signs, no spaces, leading zeros allowed), host/channel/target < 2^32,
// lun < 2^64.
func ParseHCTL(s string) (HCTL, error) {
	f := strings.Split(s, ":")
	if len(f) != 4 {
		return HCTL{}, fmt.Errorf("want h:c:t:l (4 decimal numbers separated by ':'), got %d field(s)", len(f))
	}
	names := [4]string{"host", "channel", "target", "lun"}
	var v [4]uint64
	for i, p := range f {
		bits := 32
		if i == 3 {
			bits = 64
		}
		n, err := parseDecimal(p, bits)
		if err != nil {
			return HCTL{}, fmt.Errorf("%s %q: %v", names[i], p, err)
		}
		v[i] = n
	}
	return HCTL{Host: uint32(v[0]), Channel: uint32(v[1]), Target: uint32(v[2]), LUN: v[3]}, nil
}

// parseDecimal accepts only ASCII digits; strconv alone would also take
// "+1" and "0x1" style prefixes are rejected by it but signs are not.
func parseDecimal(s string, bits int) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty, want a decimal number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("out of range (max %d)", uint64(1)<<bits-1)
	}
	return n, nil
}

// PDevKind says which of the three pdev forms a spec used.
type PDevKind int

const (
	// PDevPath is a device node path under /dev/ (persistent names such
	// as /dev/disk/by-id/... are preferred); it is resolved through sysfs.
	PDevPath PDevKind = iota + 1
	// PDevHCTL is a host SCSI address h:c:t:l (for xen-scsiback: an LIO
	// TPG alias "h:c:t" plus an LIO LUN index).
	PDevHCTL
	// PDevNAA is an LIO xen-pvscsi target port name plus LIO LUN index,
	// naa.<hex>:<lun>.
	PDevNAA
	// PDevLUN is one of the userspace backend's own forms, file:/path,
	// ram:<size>, block:/dev/X or sg:/dev/X (backend/lunconf syntax),
	// usable with FlavourUserspace only.
	PDevLUN
)

func (k PDevKind) String() string {
	switch k {
	case PDevPath:
		return "path"
	case PDevHCTL:
		return "hctl"
	case PDevNAA:
		return "naa"
	case PDevLUN:
		return "lun"
	}
	return fmt.Sprintf("PDevKind(%d)", int(k))
}

// PDev is the physical side of a spec.
type PDev struct {
	Kind PDevKind
	Path string // PDevPath: the path as written
	HCTL HCTL   // PDevHCTL
	WWN  string // PDevNAA: "naa.<hex>" as written (LIO compares names verbatim)
	LUN  uint64 // PDevNAA: the LIO LUN index (not the physical LUN)
	Text string // PDevLUN: the p-dev as written (file:/x, ram:64M, ...)
}

// String renders p in the canonical form ParseSpec accepts.
func (p PDev) String() string {
	switch p.Kind {
	case PDevPath:
		return p.Path
	case PDevHCTL:
		return p.HCTL.String()
	case PDevNAA:
		return p.WWN + ":" + strconv.FormatUint(p.LUN, 10)
	case PDevLUN:
		return p.Text
	}
	return ""
}

// Spec is one parsed vscsi entry.
type Spec struct {
	PDev PDev
	VDev HCTL // VDev.Host selects the vhost; c:t:l is what the guest sees
	// FeatureHost asks a backend for raw pass-through (no CDB filtering or
	// REPORT LUNS emulation). Only the xenlinux backend reads it.
	FeatureHost bool
	// ReadOnly, Direct and Raw are options of the userspace backend's
	// LUNs (",ro", ",direct", ",raw" in its p-dev); the kernel flavours
	// refuse them.
	ReadOnly, Direct, Raw bool
}

// String renders s canonically: ParseSpec(s.String()) gives s back.
func (s Spec) String() string {
	var sb strings.Builder
	sb.WriteString(s.PDev.String())
	sb.WriteByte(',')
	sb.WriteString(s.VDev.String())
	for _, o := range optionTable {
		if o.isSet(&s) {
			sb.WriteByte(',')
			sb.WriteString(o.name)
		}
	}
	return sb.String()
}

// option is one entry of the table of known spec options. New options are
// added here (and to docs/vscsi-syntax.md); everything else about parsing
// and rendering them follows from the table.
type option struct {
	name  string
	doc   string
	set   func(*Spec)
	isSet func(*Spec) bool
}

var optionTable = []option{
	{
		name:  "feature-host",
		doc:   "raw SCSI pass-through (backend feature-host = 1)",
		set:   func(s *Spec) { s.FeatureHost = true },
		isSet: func(s *Spec) bool { return s.FeatureHost },
	},
	{
		name:  "ro",
		doc:   "read-only LUN (userspace backend only)",
		set:   func(s *Spec) { s.ReadOnly = true },
		isSet: func(s *Spec) bool { return s.ReadOnly },
	},
	{
		name:  "direct",
		doc:   "O_DIRECT on a block device (userspace backend only)",
		set:   func(s *Spec) { s.Direct = true },
		isSet: func(s *Spec) bool { return s.Direct },
	},
	{
		name:  "raw",
		doc:   "SG_IO pass-through without CDB filtering (userspace backend only)",
		set:   func(s *Spec) { s.Raw = true },
		isSet: func(s *Spec) bool { return s.Raw },
	},
}

// KnownOptions lists the option names ParseSpec accepts, sorted.
func KnownOptions() []string {
	names := make([]string, 0, len(optionTable))
	for _, o := range optionTable {
		names = append(names, o.name)
	}
	sort.Strings(names)
	return names
}

func lookupOption(name string) *option {
	for i := range optionTable {
		if optionTable[i].name == name {
			return &optionTable[i]
		}
	}
	return nil
}

// Origin says where a spec came from, for messages: its index in the
// vscsi list (EntryNone when it did not come from a list, e.g. a command
// line; EntryAttached for something already in the domain, described by
// Spec), its text as written, and its position in a config file (zero if
// none).
type Origin struct {
	Entry int
	Spec  string
	Pos   Pos
}

// Special Origin.Entry values.
const (
	EntryNone     = -1
	EntryAttached = -2
)

// String renders o as `file:line:col: vscsi[1] "spec"`, leaving out the
// parts that are unknown.
func (o Origin) String() string {
	var sb strings.Builder
	if o.Pos.Line > 0 {
		sb.WriteString(o.Pos.String())
		sb.WriteString(": ")
	}
	switch {
	case o.Entry == EntryAttached:
		sb.WriteString(o.Spec)
		return sb.String()
	case o.Entry >= 0:
		fmt.Fprintf(&sb, "vscsi[%d] ", o.Entry)
	default:
		sb.WriteString("vscsi spec ")
	}
	sb.WriteString(strconv.Quote(o.Spec))
	return sb.String()
}

// SpecError is a spec that cannot be used. Token is the offending part of
// the spec (after whitespace trimming), Msg says what is wrong with it, and
// Err, if set, is the underlying cause (e.g. a *ResolveError).
type SpecError struct {
	Origin
	Token string
	Msg   string
	Err   error
}

func (e *SpecError) Error() string {
	var sb strings.Builder
	sb.WriteString(e.Origin.String())
	sb.WriteString(": ")
	if e.Token != "" {
		fmt.Fprintf(&sb, "%q: ", e.Token)
	}
	sb.WriteString(e.Msg)
	if e.Err != nil {
		sb.WriteString(": ")
		sb.WriteString(e.Err.Error())
	}
	return sb.String()
}

func (e *SpecError) Unwrap() error { return e.Err }

// Warning is a spec that is accepted but probably not what the user wants
// (a guest-side rescan will not find the device, the backend
// ignores an option, ...).
type Warning struct {
	Origin
	Token string
	Msg   string
}

func (w Warning) String() string {
	s := w.Origin.String() + ": warning: "
	if w.Token != "" {
		s += strconv.Quote(w.Token) + ": "
	}
	return s + w.Msg
}

// specSpace is what libxlutil trims around each token (C isspace).
const specSpace = " \t\n\v\f\r"

// ParseSpec parses one spec that did not come from a config list (for
// example the arguments of scsi-attach). Errors are *SpecError.
func ParseSpec(text string) (Spec, []Warning, error) {
	return parseSpec(Origin{Entry: EntryNone, Spec: text})
}

// ParseSpecAt parses one spec with its origin, for messages.
func ParseSpecAt(o Origin) (Spec, []Warning, error) { return parseSpec(o) }

func parseSpec(o Origin) (Spec, []Warning, error) {
	fail := func(tok, format string, a ...any) (Spec, []Warning, error) {
		return Spec{}, nil, &SpecError{Origin: o, Token: tok, Msg: fmt.Sprintf(format, a...)}
	}
	if i := strings.IndexFunc(o.Spec, func(r rune) bool { return r < 0x20 && !strings.ContainsRune(specSpace, r) || r == 0x7f }); i >= 0 {
		return fail("", "control character %q at byte %d", o.Spec[i], i)
	}
	raw := strings.Split(o.Spec, ",")
	toks := make([]string, len(raw))
	for i, t := range raw {
		toks[i] = strings.Trim(t, specSpace)
	}
	if len(toks) < 2 {
		if toks[0] == "" {
			return fail("", "empty spec, want pdev,vdev[,option]")
		}
		return fail(toks[0], "missing vdev: want pdev,vdev[,option]")
	}
	if toks[0] == "" {
		return fail("", "missing pdev before ','")
	}
	if toks[1] == "" {
		return fail("", "missing vdev after ','")
	}

	var s Spec
	var err error
	s.PDev, err = parsePDev(toks[0])
	if err != nil {
		return fail(toks[0], "pdev: %v", err)
	}
	s.VDev, err = ParseHCTL(toks[1])
	if err != nil {
		return fail(toks[1], "vdev: %v", err)
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"channel", uint64(s.VDev.Channel)}, {"target", uint64(s.VDev.Target)}, {"lun", s.VDev.LUN}} {
		if f.v > MaxVDevField {
			return fail(toks[1], "vdev: %s %d does not fit the 16-bit ring field (max %d)", f.name, f.v, MaxVDevField)
		}
	}

	seen := map[string]bool{}
	for _, t := range toks[2:] {
		if t == "" {
			return fail("", "empty option after ','")
		}
		opt := lookupOption(t)
		if opt == nil {
			return fail(t, "unknown option, expected one of: %s", strings.Join(KnownOptions(), ", "))
		}
		if seen[t] {
			return fail(t, "option given twice")
		}
		seen[t] = true
		opt.set(&s)
	}

	var warns []Warning
	warn := func(format string, a ...any) {
		warns = append(warns, Warning{Origin: o, Token: toks[1], Msg: fmt.Sprintf(format, a...)})
	}
	// Linux xen-scsifront registers its host with these limits: the
	// midlayer's scans (a rescan in the guest, a reconnect) skip anything
	// outside them, and so may other tools in the guest.
	const why = "is outside Linux xen-scsifront's host limits (%s): a guest-side rescan will not find it"
	if s.VDev.Channel != FrontMaxChannel {
		warn("vdev channel %d "+why, s.VDev.Channel, "channel 0 only")
	}
	if s.VDev.Target > FrontMaxTarget {
		warn("vdev target %d "+why, s.VDev.Target, fmt.Sprintf("targets 0-%d", FrontMaxTarget))
	}
	if s.VDev.LUN > FrontMaxLUN {
		warn("vdev lun %d "+why, s.VDev.LUN, fmt.Sprintf("LUNs 0-%d", FrontMaxLUN))
	}
	return s, warns, nil
}

func parsePDev(t string) (PDev, error) {
	switch {
	case strings.HasPrefix(t, "/dev/"):
		if len(t) == len("/dev/") {
			return PDev{}, fmt.Errorf("no device name after /dev/")
		}
		if strings.ContainsAny(t, specSpace) {
			return PDev{}, fmt.Errorf("device path contains white space")
		}
		return PDev{Kind: PDevPath, Path: t}, nil
	case strings.HasPrefix(t, "naa."):
		return parseNAA(t)
	case isLUNForm(t):
		// The userspace backend's own forms: checked with its parser
		// now, so a typo is reported whatever the flavour.
		if strings.ContainsAny(t, specSpace) {
			return PDev{}, fmt.Errorf("path contains white space")
		}
		if _, err := lunconf.Parse(t); err != nil {
			return PDev{}, err
		}
		return PDev{Kind: PDevLUN, Text: t}, nil
	}
	h, err := ParseHCTL(t)
	if err != nil {
		if !strings.Contains(t, ":") {
			return PDev{}, fmt.Errorf("want /dev/<node>, h:c:t:l or naa.<hex>:<lun>, or for the userspace backend file:/path, ram:<size>, block:/dev/X, sg:/dev/X")
		}
		return PDev{}, fmt.Errorf("want /dev/<node>, h:c:t:l or naa.<hex>:<lun>, or for the userspace backend file:/path, ram:<size>, block:/dev/X, sg:/dev/X: %v", err)
	}
	return PDev{Kind: PDevHCTL, HCTL: h}, nil
}

// parseNAA checks "naa.<hex>:<lun>". libxlutil caps the hex part at 16
// digits; xen-scsiback does not (it compares with the LIO port name, which
// may be up to 31 bytes), so the only length limit here is the backend's:
// the whole canonical p-dev must fit in MaxNAAPDevLen bytes (P6, P7).
func parseNAA(t string) (PDev, error) {
	i := strings.LastIndexByte(t, ':')
	if i < 0 {
		return PDev{}, fmt.Errorf("want naa.<hex>:<lun>, missing ':<lun>'")
	}
	wwn, lun := t[:i], t[i+1:]
	hex := wwn[len("naa."):]
	if hex == "" {
		return PDev{}, fmt.Errorf("want naa.<hex>:<lun>, no hex digits after \"naa.\"")
	}
	for j := 0; j < len(hex); j++ {
		c := hex[j]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return PDev{}, fmt.Errorf("want naa.<hex>:<lun>, %q is not a hex digit", c)
		}
	}
	n, err := parseDecimal(lun, 64)
	if err != nil {
		return PDev{}, fmt.Errorf("LIO LUN index %q: %v", lun, err)
	}
	p := PDev{Kind: PDevNAA, WWN: wwn, LUN: n}
	if l := len(p.String()); l > MaxNAAPDevLen {
		return PDev{}, fmt.Errorf("%q is %d bytes; xen-scsiback matches at most %d (it truncates p-dev), so it could never be found", p.String(), l, MaxNAAPDevLen)
	}
	return p, nil
}
