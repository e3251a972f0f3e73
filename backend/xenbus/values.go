package xenbus

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// maxPort bounds event-channel ports: the FIFO ABI's 2^17 channels (the
// 2-level ABI has fewer); port 0 is never valid.
const maxPort = 1<<17 - 1

// maxValue bounds any xenstore value we parse as a number: a decimal
// uint32 has at most 10 digits.
const maxDigits = 10

// parseUint parses a decimal number the way the guest is expected to write
// it ("%u"): digits only, no sign, no spaces, no hex, at most 10 digits,
// at most max. The value is hostile: every other byte string is refused
// with an error naming it.
func parseUint(what, v string, max uint64) (uint64, error) {
	if v == "" {
		return 0, fmt.Errorf("%s is empty", what)
	}
	if len(v) > maxDigits {
		return 0, fmt.Errorf("%s %s is too long", what, quoteShort(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("%s %s is not a decimal number", what, quoteShort(v))
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("%s %s is out of range (max %d)", what, quoteShort(v), max)
	}
	return n, nil
}

// quoteShort quotes a hostile value for a message, cut to 40 bytes so a
// guest cannot make us write a 4 KiB error node or log line.
func quoteShort(v string) string {
	if len(v) > 40 {
		return strconv.Quote(v[:40]) + "..."
	}
	return strconv.Quote(v)
}

// ParseState parses a xenbus state node. Anything but "0".."8" is an error.
func ParseState(v string) (int, error) {
	n, err := parseUint("state", v, xenif.StateReconfigured)
	return int(n), err
}

// ParseRingRef parses FE/ring-ref: a grant reference (uint32).
func ParseRingRef(v string) (uint32, error) {
	n, err := parseUint("ring-ref", v, 1<<32-1)
	return uint32(n), err
}

// ParseEventChannel parses FE/event-channel: a port in 1..2^17-1.
func ParseEventChannel(v string) (uint32, error) {
	n, err := parseUint("event-channel", v, maxPort)
	if err == nil && n == 0 {
		return 0, fmt.Errorf("event-channel \"0\" is not a valid port")
	}
	return uint32(n), err
}

// ParseDomid parses a domain id (frontend-id, directory names): Xen's
// domids are below DOMID_FIRST_RESERVED (0x7FF0).
func ParseDomid(v string) (uint32, error) {
	n, err := parseUint("domid", v, 0x7FEF)
	return uint32(n), err
}

// ParseVdev parses v-dev "h:c:t:l" (decimal). The host part is ignored by
// the protocol; channel, target and LUN land in 16-bit ring fields.
func ParseVdev(v string) (datapath.Addr, error) {
	f := strings.Split(v, ":")
	if len(f) != 4 {
		return datapath.Addr{}, fmt.Errorf("v-dev %s is not h:c:t:l", quoteShort(v))
	}
	var n [4]uint64
	for i, x := range f {
		max := uint64(0xFFFF)
		if i == 0 {
			max = 1<<32 - 1
		}
		var err error
		if n[i], err = parseUint("v-dev field", x, max); err != nil {
			return datapath.Addr{}, fmt.Errorf("v-dev %s: %v", quoteShort(v), err)
		}
	}
	return datapath.Addr{Channel: uint16(n[1]), Target: uint16(n[2]), LUN: uint16(n[3])}, nil
}

// CheckFrontendPath checks BE/frontend against BE/frontend-id: the path
// must be a clean absolute path inside that domain's home, so a bad entry
// cannot make us read (or map grants announced in) another domain's tree.
func CheckFrontendPath(fe string, domid uint32) error {
	if len(fe) > 1024 {
		return fmt.Errorf("frontend path %s is too long", quoteShort(fe))
	}
	home := "/local/domain/" + strconv.FormatUint(uint64(domid), 10) + "/"
	if !strings.HasPrefix(fe, home) || len(fe) == len(home) || path.Clean(fe) != fe {
		return fmt.Errorf("frontend path %s is not inside %s", quoteShort(fe), home)
	}
	for i := 0; i < len(fe); i++ {
		c := fe[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/-_@", c) >= 0) {
			return fmt.Errorf("frontend path %s has a character xenstore does not allow", quoteShort(fe))
		}
	}
	return nil
}

// devIndex parses a "dev-<N>" child name of vscsi-devs.
func devIndex(name string) (uint64, bool) {
	if !strings.HasPrefix(name, "dev-") {
		return 0, false
	}
	n, err := parseUint("dev", name[len("dev-"):], 1<<32-1)
	return n, err == nil
}
