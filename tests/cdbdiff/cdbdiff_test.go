package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/store"
)

var rig = Geometry{Blocks: 131072, BlockSize: 512}

// TestListRoundTrip: every case's line parses back to the same CDB and data.
func TestListRoundTrip(t *testing.T) {
	cases := Cases(rig)
	if len(cases) < 400 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		f := strings.Split(c.Format(), "|")
		if len(f) != 6 {
			t.Fatalf("%s: %d fields", c.ID, len(f))
		}
		if strings.ContainsAny(c.ID, "| \t") {
			t.Fatalf("%s: bad characters in the ID", c.ID)
		}
		p, err := parseData(f[5])
		if err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		if !bytes.Equal(p, c.Data) {
			t.Fatalf("%s: data does not round-trip", c.ID)
		}
		if c.Dir == DirOut && c.Len != len(c.Data) || c.Dir == DirIn && c.Len <= 0 {
			t.Fatalf("%s: dir %c len %d data %d", c.ID, c.Dir, c.Len, len(c.Data))
		}
		if len(c.CDB) < 6 || len(c.CDB) > 16 {
			t.Fatalf("%s: CDB length %d", c.ID, len(c.CDB))
		}
	}
}

// runOurs runs the list in-process against one of our RAM disks of the
// rig's geometry and returns the results in the guest runner's format.
func runOurs(t *testing.T, cases []Case) map[string]Outcome {
	t.Helper()
	st, err := store.NewRAM(int64(rig.Blocks)*int64(rig.BlockSize), store.RAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lun := scsi.NewDisk(st, scsi.DiskOptions{ID: "cdbdiff", Discard: true, WriteCache: true})
	defer lun.Close()
	var out strings.Builder
	for _, c := range cases {
		cmd := scsi.Command{CDB: append([]byte(nil), c.CDB...)}
		switch c.Dir {
		case DirIn:
			cmd.Dir, cmd.Data = scsi.DirFromDevice, make([]byte, c.Len)
		case DirOut:
			cmd.Dir, cmd.Data = scsi.DirToDevice, append([]byte(nil), c.Data...)
		}
		var res scsi.Result
		lun.Execute(&cmd, &res)
		fmt.Fprintln(&out, FormatResult(c.ID, int(res.Status), res.Sense, res.DataLen))
	}
	m, err := ParseResults(strings.NewReader(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOursInProcess runs the whole list through the emulator: every case
// gets an answer, and the answers our own documentation promises hold.
func TestOursInProcess(t *testing.T) {
	cases := Cases(rig)
	m := runOurs(t, cases)
	if len(m) != len(cases) {
		t.Fatalf("%d answers for %d cases", len(m), len(cases))
	}
	for id, want := range map[string]string{
		"read10.lba0":        "GOOD",
		"read10.capacity":    "CHECK 5/21/00",
		"read16.lba-wraps":   "CHECK 5/21/00",
		"write10.short-data": "CHECK 5/0E/03",
		"scan.c0":            "CHECK 5/20/00",
	} {
		if got := m[id].String(); got != want {
			t.Errorf("%s: %s, want %s", id, got, want)
		}
	}
}

// TestAgainstRecordedLIO compares the in-process answers with LIO's as
// recorded on the rig (testdata/lio-*.txt, written by the cdb-diff
// scenario). The rig scenario is the proof; this keeps the emulator from
// drifting between rig runs. Without a recording it is skipped.
func TestAgainstRecordedLIO(t *testing.T) {
	files, _ := filepath.Glob("testdata/lio-*.txt")
	if len(files) == 0 {
		t.Skip("no recorded LIO results in testdata/")
	}
	for _, f := range files {
		cases := Cases(rig)
		ours := runOurs(t, cases)
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		lio, err := ParseResults(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// A case the guest's kernel refused (no SCSI status) never reached
		// LIO, and in-process it cannot be refused the same way: only the
		// rig compares those.
		var reached []Case
		for _, c := range cases {
			if o, ok := lio[c.ID]; !ok || o.Status >= 0 {
				reached = append(reached, c)
			}
		}
		var buf bytes.Buffer
		if report(&buf, reached, lio, ours, false) != 0 {
			t.Errorf("%s: differences not intended:\n%s", f, buf.String())
		}
	}
}

// TestIntendedDocumented: docs/backend.md names every intended difference
// by its case pattern, and every pattern matches at least one case.
func TestIntendedDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/backend.md")
	if err != nil {
		t.Fatal(err)
	}
	cases := Cases(rig)
	for _, e := range intended {
		if !bytes.Contains(doc, []byte("`"+e.Pattern+"`")) {
			t.Errorf("intended difference %q is not in docs/backend.md", e.Pattern)
		}
		hit := false
		for _, c := range cases {
			if ok, _ := filepath.Match(e.Pattern, c.ID); ok {
				hit = true
				break
			}
		}
		if !hit {
			t.Errorf("intended pattern %q matches no case", e.Pattern)
		}
	}
}

// fakeSgRaw is an sg_raw that prints what the real one prints with -v for
// a few canned answers, and saves any data-out file it is given.
const fakeSgRaw = `#!/bin/sh
out=""
while [ $# -gt 0 ]; do
	case $1 in
	-i) cp "$2" "$FAKE_DIR/data.$(cat $FAKE_DIR/n)"; shift 2 ;;
	-r|-s|-o|-t) shift 2 ;;
	-v) shift ;;
	/dev/*) dev=$1; shift; break ;;
	*) shift ;;
	esac
done
echo $(( $(cat $FAKE_DIR/n) + 1 )) >$FAKE_DIR/n
echo "    cdb to send: $*" >&2
case $1 in
12)
	echo "SCSI Status: Good " >&2; echo >&2
	echo "Writing 36 bytes of data to /dev/null" >&2 ;;
28)
	echo "SCSI Status: Check Condition " >&2; echo >&2
	echo "Sense Information:" >&2
	echo "Fixed format, current; Sense key: Illegal Request" >&2
	echo "Additional sense: Logical block address out of range" >&2
	echo " Raw sense data (in hex), sb_len=18, calculated_len=18" >&2
	echo "        70 00 05 00 00 00 00 0a  00 00 00 00 21 00 00 00" >&2
	echo "        00 00" >&2
	echo >&2
	echo "Error 5 occurred, no data received" >&2 ;;
5f)
	echo "SCSI Status: Reservation Conflict " >&2; echo >&2 ;;
2a)
	echo ">>> transport error: Host_status=0x07 [DID_ERROR]" >&2
	echo "SCSI Status: Good " >&2 ;;
*)
	echo "do_scsi_pt: Invalid argument" >&2 ;;
esac
exit 0
`

// TestGuestRunner runs the guest runner with busybox sh (the guest's
// shell) against a fake sg_raw: the data-out files it builds are the
// cases' bytes, and sg_raw's output becomes the right result lines.
func TestGuestRunner(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed (the guest's shell)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "sg_raw"), []byte(fakeSgRaw), 0o755)
	for _, a := range []string{"head", "tr", "printf", "awk", "cat", "cp"} {
		os.Symlink(bb, filepath.Join(bin, a))
	}
	os.WriteFile(filepath.Join(dir, "n"), []byte("0\n"), 0o644)
	all := Cases(rig)
	pick := func(id string) Case {
		for _, c := range all {
			if c.ID == id {
				return c
			}
		}
		t.Fatalf("no case %s", id)
		return Case{}
	}
	cases := []Case{pick("inquiry.std-alloc36"), pick("read10.capacity"), pick("pr-out.register-a"),
		pick("write10.lba8"), pick("caw.miscompare-offset7"), pick("tur")}
	var list strings.Builder
	for _, c := range cases {
		fmt.Fprintln(&list, c.Format())
	}
	os.WriteFile(filepath.Join(dir, "list"), []byte(list.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "runner.sh"), []byte(guestRunner), 0o644)
	cmd := exec.Command(bb, "sh", filepath.Join(dir, "runner.sh"), "/dev/sg9", filepath.Join(dir, "list"))
	cmd.Env = []string{"PATH=" + bin, "FAKE_DIR=" + dir}
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runner: %v\n%s", err, out)
	}
	want := []string{
		"inquiry.std-alloc36|Good||36",
		"read10.capacity|Check Condition|70.00.05.00.00.00.00.0a.00.00.00.00.21.00.00.00.00.00|0",
		"pr-out.register-a|Reservation Conflict||0",
		"write10.lba8|ERR:transport error: Host_status=0x07 [DID_ERROR]||0",
		"caw.miscompare-offset7|ERR:do_scsi_pt: Invalid argument||0",
		"tur|ERR:do_scsi_pt: Invalid argument||0",
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("runner output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	// the data-out files are the cases' bytes (sg_raw calls 3, 4, 5 carry data)
	for i, c := range cases {
		if c.Dir != DirOut {
			continue
		}
		p, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("data.%d", i)))
		if err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		if !bytes.Equal(p, c.Data) {
			t.Fatalf("%s: runner built %d bytes % x..., want %d bytes % x...", c.ID, len(p), head(p), len(c.Data), head(c.Data))
		}
	}
	m, err := ParseResults(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if s := m["read10.capacity"].String(); s != "CHECK 5/21/00" {
		t.Fatalf("read10.capacity parsed as %s", s)
	}
	if s := m["pr-out.register-a"].String(); s != "RESERVATION-CONFLICT" {
		t.Fatalf("pr-out.register-a parsed as %s", s)
	}
}

func head(p []byte) []byte { return p[:min(len(p), 16)] }

// TestReportCounts: the report counts per class and fails only on
// differences that are not intended.
func TestReportCounts(t *testing.T) {
	cases := []Case{{ID: "a", Class: ClassRW}, {ID: "b", Class: ClassRW}, {ID: "c", Class: ClassSPC}}
	good := Outcome{Status: 0, Key: -1, ASC: -1, ASCQ: -1}
	chk := Outcome{Status: 2, Key: 5, ASC: 0x20, ASCQ: 0}
	var buf bytes.Buffer
	rc := report(&buf, cases, map[string]Outcome{"a": good, "b": good, "c": good}, map[string]Outcome{"a": good, "b": chk, "c": good}, false)
	if rc != 1 {
		t.Fatalf("rc %d, want 1:\n%s", rc, buf.String())
	}
	if !regexp.MustCompile(`(?m)^read-write\s+2\s+1\s+0$`).MatchString(buf.String()) {
		t.Fatalf("no read-write line with 2 cases 1 diff:\n%s", buf.String())
	}
	buf.Reset()
	if rc := report(&buf, cases, map[string]Outcome{"a": good, "b": good}, map[string]Outcome{"a": good, "b": good, "c": good}, false); rc != 1 ||
		!strings.Contains(buf.String(), "MISSING") {
		t.Fatalf("a missing answer must fail the report: rc %d\n%s", rc, buf.String())
	}
}
