package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Outcome is what one LUN answered to one case.
type Outcome struct {
	Status    int    // SAM status; -1 when the command did not complete (Err)
	Key       int    // sense key, -1 without sense
	ASC, ASCQ int    // -1 without sense
	Bytes     int    // data-in bytes received
	Err       string // transport or OS error text, when Status is -1
}

// Same is the differential's notion of equal answers: status, sense key
// and ASC/ASCQ (lengths and data contents legitimately differ).
func (o Outcome) Same(p Outcome) bool {
	return o.Status == p.Status && o.Key == p.Key && o.ASC == p.ASC && o.ASCQ == p.ASCQ && o.Err == p.Err
}

func (o Outcome) String() string {
	if o.Status < 0 {
		return "ERROR(" + o.Err + ")"
	}
	s := statusName(o.Status)
	if o.Key >= 0 {
		s += fmt.Sprintf(" %X/%02X/%02X", o.Key, o.ASC, o.ASCQ)
	}
	return s
}

var statusNames = map[int]string{
	0x00: "GOOD", 0x02: "CHECK", 0x04: "CONDITION-MET", 0x08: "BUSY", 0x18: "RESERVATION-CONFLICT",
	0x28: "TASK-SET-FULL", 0x30: "ACA-ACTIVE", 0x40: "TASK-ABORTED",
}

func statusName(s int) string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("STATUS-%#02x", s)
}

// sgRawStatus maps sg_raw's "SCSI Status:" words (sg3_utils'
// sg_get_scsi_status_str) to the status code.
var sgRawStatus = map[string]int{
	"good": 0x00, "check condition": 0x02, "condition met": 0x04, "busy": 0x08,
	"reservation conflict": 0x18, "task set full": 0x28, "aca active": 0x30, "task aborted": 0x40,
}

// senseFields decodes key/ASC/ASCQ from fixed (70h/71h) or descriptor
// (72h/73h) sense.
func senseFields(s []byte) (key, asc, ascq int, ok bool) {
	if len(s) < 4 {
		return -1, -1, -1, false
	}
	switch s[0] & 0x7F {
	case 0x70, 0x71:
		if len(s) < 14 {
			return int(s[2] & 0x0F), -1, -1, len(s) >= 3
		}
		return int(s[2] & 0x0F), int(s[12]), int(s[13]), true
	case 0x72, 0x73:
		return int(s[1] & 0x0F), int(s[2]), int(s[3]), true
	}
	return -1, -1, -1, false
}

// ParseResults reads the guest runner's lines: id|status words|sense hex
// bytes joined by '.'|bytes received.
func ParseResults(r io.Reader) (map[string]Outcome, error) {
	m := map[string]Outcome{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 4 {
			return nil, fmt.Errorf("results line %d: want 4 fields, got %d: %q", n, len(f), line)
		}
		o := Outcome{Status: -1, Key: -1, ASC: -1, ASCQ: -1}
		st := strings.ToLower(strings.TrimSpace(f[1]))
		if code, ok := sgRawStatus[st]; ok {
			o.Status = code
		} else if strings.HasPrefix(st, "err:") || st == "" {
			o.Err = strings.TrimSpace(strings.TrimPrefix(f[1], "ERR:"))
			if o.Err == "" {
				o.Err = "no status"
			}
		} else {
			return nil, fmt.Errorf("results line %d: unknown status %q", n, f[1])
		}
		if f[2] != "" {
			var sense []byte
			for _, h := range strings.Split(f[2], ".") {
				v, err := strconv.ParseUint(h, 16, 8)
				if err != nil {
					return nil, fmt.Errorf("results line %d: sense byte %q: %w", n, h, err)
				}
				sense = append(sense, byte(v))
			}
			if o.Status == 0x02 {
				o.Key, o.ASC, o.ASCQ, _ = senseFields(sense)
			}
		}
		if f[3] != "" {
			v, err := strconv.Atoi(f[3])
			if err != nil {
				return nil, fmt.Errorf("results line %d: bytes %q: %w", n, f[3], err)
			}
			o.Bytes = v
		}
		if _, dup := m[f[0]]; dup {
			return nil, fmt.Errorf("results line %d: case %s twice", n, f[0])
		}
		m[f[0]] = o
	}
	return m, sc.Err()
}

// FormatResult is the results line for an outcome (the in-process runner
// writes the same format the guest runner does).
func FormatResult(id string, status int, sense []byte, n int) string {
	words := "ERR:unknown"
	for w, c := range sgRawStatus {
		if c == status {
			words = w
		}
	}
	hex := make([]string, len(sense))
	for i, b := range sense {
		hex[i] = fmt.Sprintf("%02x", b)
	}
	return fmt.Sprintf("%s|%s|%s|%d", id, words, strings.Join(hex, "."), n)
}

// Diff is one case whose answers differ.
type Diff struct {
	Case     Case
	LIO, Our Outcome
	Missing  string // "lio" or "ours" when a side has no answer
	Intended *Intended
}

// Compare lines up both sides' outcomes over cases.
func Compare(cases []Case, lio, ours map[string]Outcome) []Diff {
	var d []Diff
	for _, c := range cases {
		a, okA := lio[c.ID]
		b, okB := ours[c.ID]
		var x Diff
		switch {
		case !okA:
			x = Diff{Case: c, Our: b, Missing: "lio"}
		case !okB:
			x = Diff{Case: c, LIO: a, Missing: "ours"}
		case !a.Same(b):
			x = Diff{Case: c, LIO: a, Our: b}
		default:
			continue
		}
		if x.Missing == "" {
			x.Intended = intendedFor(c.ID, a, b)
		}
		d = append(d, x)
	}
	return d
}
