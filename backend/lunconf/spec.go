// Package lunconf turns the p-dev string of a vscsi device (BE/vscsi-devs/
// dev-N/p-dev, written by the toolstack) into a scsi.LUN for the userspace
// backend: it parses the syntax, checks it against an allow-list policy and
// opens the backing store.
//
// Syntax (docs/backend.md has the full table):
//
//	/dev/sdX, /dev/disk/by-id/...   a block device: emulated disk over it
//	                                 (resolved at open: a char SCSI generic
//	                                 node such as /dev/sgN is passed through)
//	/dev/sgN                         SG_IO pass-through
//	block:/dev/X                     force the emulated disk over a block device
//	sg:/dev/X                        force SG_IO pass-through (/dev/sgN or /dev/sdX)
//	file:/path/disk.img              emulated disk over a regular file
//	ram:<size>                       sparse RAM disk, size with K/M/G/T suffix (1024-based)
//
// Options follow a comma: ",ro" (read-only, every kind), ",direct"
// (O_DIRECT, block only), ",raw" (pass-through without CDB filtering,
// sg only). So a "/dev/..." p-dev names the same disk under xen-scsiback
// (after the toolstack's h:c:t:l or naa. resolution) and under this backend.
//
// The p-dev is written by the toolstack, not the guest, but it is still
// treated as untrusted: paths must be absolute and clean (no "..", no
// duplicate slashes, no control characters), the path as written must lie
// under an allow-list entry, and it is opened beneath that entry with
// openat2(2) (package safeopen), so no symlink or rename leads outside.
package lunconf

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Kind is what backs a LUN.
type Kind int

// Kinds of backing.
const (
	// KindDevice is a "/dev/..." p-dev whose kind is decided when it is
	// opened: a block device becomes KindBlock, a character device that
	// answers SG_IO becomes KindSG.
	KindDevice Kind = iota
	KindBlock
	KindSG
	KindFile
	KindRAM
)

func (k Kind) String() string {
	switch k {
	case KindDevice:
		return "device"
	case KindBlock:
		return "block"
	case KindSG:
		return "sg"
	case KindFile:
		return "file"
	case KindRAM:
		return "ram"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxPdevLen bounds a p-dev string. xenstore values may be 4 KiB; paths
// longer than PATH_MAX cannot be opened anyway.
const MaxPdevLen = 4096

// MaxRAMSize caps ram:<size> whatever the policy says (1 TiB of address
// space; pages are only allocated when written).
const MaxRAMSize = 1 << 40

// Spec is a parsed p-dev.
type Spec struct {
	Kind     Kind
	Path     string // device or file path (not for KindRAM)
	Size     int64  // KindRAM: bytes, a multiple of 512
	ReadOnly bool
	Direct   bool // KindBlock/KindDevice: O_DIRECT
	Raw      bool // KindSG/KindDevice: no CDB filtering (feature-host style)
}

// String renders the spec back in p-dev syntax (canonical form: explicit
// options in a fixed order).
func (s Spec) String() string {
	var b strings.Builder
	switch s.Kind {
	case KindDevice:
		b.WriteString(s.Path)
	case KindRAM:
		b.WriteString("ram:" + strconv.FormatInt(s.Size, 10))
	default:
		b.WriteString(s.Kind.String() + ":" + s.Path)
	}
	if s.ReadOnly {
		b.WriteString(",ro")
	}
	if s.Direct {
		b.WriteString(",direct")
	}
	if s.Raw {
		b.WriteString(",raw")
	}
	return b.String()
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("bad p-dev")

func syntaxErr(pdev, format string, a ...any) error {
	return fmt.Errorf("%w %q: %s", ErrSyntax, pdev, fmt.Sprintf(format, a...))
}

// Parse parses a p-dev string. Errors wrap ErrSyntax and name the bad part.
func Parse(pdev string) (Spec, error) {
	if pdev == "" {
		return Spec{}, syntaxErr(pdev, "empty")
	}
	if len(pdev) > MaxPdevLen {
		return Spec{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrSyntax, len(pdev), MaxPdevLen)
	}
	for i := 0; i < len(pdev); i++ {
		if c := pdev[i]; c < 0x20 || c == 0x7f {
			return Spec{}, syntaxErr(pdev, "control character at byte %d", i)
		}
	}
	main, opts, hasOpts := strings.Cut(pdev, ",")
	var s Spec
	switch {
	case strings.HasPrefix(main, "/"):
		s.Kind, s.Path = KindDevice, main
	case strings.HasPrefix(main, "file:"):
		s.Kind, s.Path = KindFile, main[len("file:"):]
	case strings.HasPrefix(main, "block:"):
		s.Kind, s.Path = KindBlock, main[len("block:"):]
	case strings.HasPrefix(main, "sg:"):
		s.Kind, s.Path = KindSG, main[len("sg:"):]
	case strings.HasPrefix(main, "ram:"):
		s.Kind = KindRAM
		n, err := parseSize(main[len("ram:"):])
		if err != nil {
			return Spec{}, syntaxErr(pdev, "%v", err)
		}
		s.Size = n
	default:
		if looksHCTL(main) || strings.HasPrefix(main, "naa.") {
			return Spec{}, syntaxErr(pdev, "%q names a kernel (xen-scsiback/LIO) device; the userspace backend takes /dev/..., file:, block:, sg: or ram:", main)
		}
		return Spec{}, syntaxErr(pdev, "unknown form %q; want /dev/..., file:/path, block:/dev/..., sg:/dev/... or ram:<size>", main)
	}
	if s.Kind != KindRAM {
		if err := checkPath(s.Path); err != nil {
			return Spec{}, syntaxErr(pdev, "%v", err)
		}
		if (s.Kind == KindDevice || s.Kind == KindBlock || s.Kind == KindSG) && !strings.HasPrefix(s.Path, "/dev/") {
			return Spec{}, syntaxErr(pdev, "device path %q is not under /dev/", s.Path)
		}
	}
	if hasOpts {
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "ro":
				if s.ReadOnly {
					return Spec{}, syntaxErr(pdev, "option %q given twice", o)
				}
				s.ReadOnly = true
			case "direct":
				if s.Kind != KindBlock && s.Kind != KindDevice {
					return Spec{}, syntaxErr(pdev, "option \"direct\" is for block devices, not %s", s.Kind)
				}
				if s.Direct {
					return Spec{}, syntaxErr(pdev, "option %q given twice", o)
				}
				s.Direct = true
			case "raw":
				if s.Kind != KindSG && s.Kind != KindDevice {
					return Spec{}, syntaxErr(pdev, "option \"raw\" is for sg pass-through, not %s", s.Kind)
				}
				if s.Raw {
					return Spec{}, syntaxErr(pdev, "option %q given twice", o)
				}
				s.Raw = true
			default:
				return Spec{}, syntaxErr(pdev, "unknown option %q (want ro, direct or raw)", o)
			}
		}
	}
	if s.Raw && s.Direct {
		return Spec{}, syntaxErr(pdev, "options \"raw\" (pass-through) and \"direct\" (emulated block disk) exclude each other")
	}
	return s, nil
}

// checkPath accepts absolute, clean paths only, so what the allow-list
// sees is what open(2) gets.
func checkPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if !filepath.IsAbs(p) {
		return fmt.Errorf("path %q is not absolute", p)
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("path %q is not clean (want %q)", p, filepath.Clean(p))
	}
	if p == "/" || p == "/dev" {
		return fmt.Errorf("path %q names a directory", p)
	}
	return nil
}

// looksHCTL reports whether s has the h:c:t:l shape.
func looksHCTL(s string) bool {
	f := strings.Split(s, ":")
	if len(f) != 4 {
		return false
	}
	for _, x := range f {
		if _, err := strconv.ParseUint(x, 10, 32); err != nil {
			return false
		}
	}
	return true
}

// parseSize parses "<n>[K|M|G|T]" (1024-based; an optional trailing "B" or
// "iB" is accepted: 64M = 64MB = 64MiB). The result must be a positive
// multiple of 512 and at most MaxRAMSize.
func parseSize(v string) (int64, error) {
	if v == "" {
		return 0, errors.New("missing size (e.g. ram:64M)")
	}
	num := v
	mult := int64(1)
	u := strings.ToUpper(v)
	u = strings.TrimSuffix(u, "IB")
	if strings.HasSuffix(u, "B") && len(u) > 1 {
		u = u[:len(u)-1]
	}
	if u != "" {
		switch u[len(u)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			u = u[:len(u)-1]
		}
	}
	num = u
	if num == "" {
		return 0, fmt.Errorf("size %q has no number", v)
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, fmt.Errorf("size %q: %q is not a decimal number with a K/M/G/T suffix", v, num)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > MaxRAMSize/mult {
		return 0, fmt.Errorf("size %q larger than the %d TiB limit", v, MaxRAMSize>>40)
	}
	n *= mult
	if n <= 0 {
		return 0, fmt.Errorf("size %q is zero", v)
	}
	if n%512 != 0 {
		return 0, fmt.Errorf("size %q (%d bytes) is not a multiple of 512", v, n)
	}
	return n, nil
}
