package xlutil

// Differential test: cfgparse against the real libxlutil (libxen-dev's
// libxlutil.so, Xen 4.17) on hand-written and generated configs.
//
// Deliberate differences (the only ones):
//   - A NUL byte inside a quoted string: libxlutil's dequoting runs strlen on
//     the token, so it either trips assert(len>=2 && src[0]==src[len-1])
//     and aborts the process, or silently truncates the string
//     (TestLibxlutilAbortsOnNULInString shows the abort). cfgparse rejects
//     such input with ErrNULInString; those configs are counted but not fed
//     to libxlutil.
//   - Error lines: cfgparse's Pos is the real position of the offending
//     token. libxlutil names another line in two cases, which
//     SyntaxError.XLULine models and this test checks: an error at a newline
//     token (it names the line before), and a += type clash (it names the
//     line of the value's last token).

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/govscsi/govscsi/cfgparse"
)

// requireXlutil fails (or, with GOVSCSI_NO_XEN_DEV=1, skips) when the real
// libxlutil is not available.
func requireXlutil(t testing.TB) {
	t.Helper()
	why := ""
	if !Available {
		why = "tests/xlutil was built without cgo/libxlutil"
	} else if err := exec.Command("pkg-config", "--exists", "xlutil").Run(); err != nil {
		why = "pkg-config xlutil failed: " + err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("GOVSCSI_NO_XEN_DEV") == "1" {
		t.Skipf("GOVSCSI_NO_XEN_DEV=1: skipping the libxlutil differential test (%s)", why)
	}
	t.Fatalf("the differential test needs the real libxlutil (Debian: apt-get install libxen-dev, or run scripts/deps.sh): %s; "+
		"set GOVSCSI_NO_XEN_DEV=1 to skip it", why)
}

var reportLine = regexp.MustCompile(`(?m)^t\.cfg:(\d+):`)

// firstReportLine is the line number of libxlutil's first "t.cfg:N:" message.
func firstReportLine(report string) (int, bool) {
	m := reportLine.FindStringSubmatch(report)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	return n, true
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var le *cfgparse.LookupError
	if errors.As(err, &le) {
		return le.Errno
	}
	return syscall.EIO
}

// outcome classifies a config for the summary.
func outcome(err error) string {
	if err == nil {
		return "accepted"
	}
	var se *cfgparse.SyntaxError
	if !errors.As(err, &se) {
		return "other error"
	}
	switch m := se.Msg; {
	case errors.Is(err, cfgparse.ErrNULInString):
		return "NUL in string (not fed to libxlutil)"
	case strings.HasPrefix(m, "unterminated string"):
		return "rejected: unterminated string"
	case strings.HasPrefix(m, "unexpected character"), strings.HasPrefix(m, "unexpected carriage"),
		strings.HasPrefix(m, "unexpected NUL"), strings.HasPrefix(m, "comment on the last"):
		return "rejected: lexical error"
	case strings.Contains(m, "escape"):
		return "rejected: bad escape"
	case strings.HasPrefix(m, "can't append"):
		return "rejected: += type clash"
	default:
		return "rejected: syntax error"
	}
}

// diff runs one config through both parsers and returns the outcome class
// or a description of the first difference.
func diff(data []byte) (string, error) {
	cfg, perr := cfgparse.Parse("t.cfg", data)
	class := outcome(perr)
	if errors.Is(perr, cfgparse.ErrNULInString) || errors.Is(perr, cfgparse.ErrLimit) {
		// Deliberate differences: libxlutil aborts on a NUL in a string,
		// and has no size, depth or value-count limits.
		return class, nil
	}
	xc, rc, err := Read("t.cfg", data)
	if err != nil {
		return class, err
	}
	defer xc.Close()
	report := xc.Report()
	if (rc == 0) != (perr == nil) {
		return class, fmt.Errorf("libxlutil rc=%d report=%q; cfgparse err=%v", int(rc), report, perr)
	}
	if perr != nil {
		var se *cfgparse.SyntaxError
		errors.As(perr, &se)
		if rc != syscall.EINVAL {
			return class, fmt.Errorf("libxlutil rc=%d, want EINVAL; report=%q", int(rc), report)
		}
		line, ok := firstReportLine(report)
		if !ok {
			return class, fmt.Errorf("libxlutil rejected without a line: %q (cfgparse: %v)", report, perr)
		}
		if line != se.XLULine {
			return class, fmt.Errorf("libxlutil names line %d, cfgparse XLULine %d (%v); report=%q", line, se.XLULine, perr, report)
		}
		return class, nil
	}
	if report != "" {
		return class, fmt.Errorf("libxlutil accepted but reported %q", report)
	}
	keys := map[string]bool{"absent": true, "xx": true, "disk.x": true}
	for _, s := range cfg.Settings {
		keys[s.Name] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if err := diffKey(cfg, xc, k); err != nil {
			return class, fmt.Errorf("key %q: %w", k, err)
		}
	}
	return class, nil
}

// warnLine checks that the warning libxlutil just printed (if any) names the
// line where our setting's value starts (libxlutil's set->lineno).
func warnLine(cfg *cfgparse.Config, xc *Config, k string, seen *int) error {
	r := xc.Report()
	fresh := r[*seen:]
	*seen = len(r)
	if fresh == "" {
		return nil
	}
	line, ok := firstReportLine(fresh)
	if !ok {
		return fmt.Errorf("warning without a line: %q", fresh)
	}
	s := cfg.Lookup(k)
	if s == nil {
		return fmt.Errorf("libxlutil warned %q about a key cfgparse does not have", fresh)
	}
	if s.Value.Pos.Line != line {
		return fmt.Errorf("libxlutil warning names line %d, cfgparse value is at %v: %q", line, s.Value.Pos, fresh)
	}
	return nil
}

func diffKey(cfg *cfgparse.Config, xc *Config, k string) error {
	seen := len(xc.Report())
	xs, xrc := xc.GetString(k)
	gs, _, gerr := cfg.GetString(k)
	if xrc != errnoOf(gerr) || (xrc == 0 && xs != gs) {
		return fmt.Errorf("GetString: libxlutil %q/%v, cfgparse %q/%v", xs, xrc, gs, gerr)
	}
	if err := warnLine(cfg, xc, k, &seen); err != nil {
		return err
	}

	xl, xrc := xc.GetLong(k)
	gl, _, gerr := cfg.GetLong(k)
	if xrc != errnoOf(gerr) || (xrc == 0 && xl != gl) {
		return fmt.Errorf("GetLong: libxlutil %d/%v, cfgparse %d/%v", xl, xrc, gl, gerr)
	}
	if err := warnLine(cfg, xc, k, &seen); err != nil {
		return err
	}
	for _, b := range [][2]int64{{0, 4096}, {-10, 10}, {math.MinInt64, 0}} {
		xl, xrc := xc.GetBoundedLong(k, b[0], b[1])
		gl, _, gerr := cfg.GetBoundedLong(k, b[0], b[1])
		if xrc != errnoOf(gerr) || (xrc == 0 && xl != gl) {
			return fmt.Errorf("GetBoundedLong%v: libxlutil %d/%v, cfgparse %d/%v", b, xl, xrc, gl, gerr)
		}
		if err := warnLine(cfg, xc, k, &seen); err != nil {
			return err
		}
	}

	items, nulls, xrc := xc.GetList(k)
	gitems, _, gerr := cfg.GetList(k)
	if xrc != errnoOf(gerr) {
		return fmt.Errorf("GetList: libxlutil %v, cfgparse %v", xrc, gerr)
	}
	if err := warnLine(cfg, xc, k, &seen); err != nil {
		return err
	}
	strs, _, serr := cfg.GetStringList(k)
	if xrc != 0 {
		if errnoOf(serr) != xrc {
			return fmt.Errorf("GetStringList: %v, libxlutil list rc %v", serr, xrc)
		}
		return nil
	}
	if len(items) != len(gitems) {
		return fmt.Errorf("list length: libxlutil %v, cfgparse %d items", items, len(gitems))
	}
	anyNULL := false
	for i := range items {
		if err := sameValue(items[i], gitems[i]); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
		if nulls[i] != (gitems[i].Kind == cfgparse.ValueList) {
			return fmt.Errorf("item %d: xlu_cfg_get_listitem NULL=%v but cfgparse kind %v", i, nulls[i], gitems[i].Kind)
		}
		anyNULL = anyNULL || nulls[i]
	}
	if anyNULL != (serr != nil) {
		return fmt.Errorf("GetStringList error %v, but libxlutil NULL items: %v", serr, nulls)
	}
	for i := range strs {
		if strs[i] != items[i].Str {
			return fmt.Errorf("GetStringList[%d] %q, libxlutil %q", i, strs[i], items[i].Str)
		}
	}
	return nil
}

func sameValue(x Value, g *cfgparse.Value) error {
	if x.IsList != (g.Kind == cfgparse.ValueList) {
		return fmt.Errorf("libxlutil %v, cfgparse kind %v", x, g.Kind)
	}
	if !x.IsList {
		if x.Str != g.Str {
			return fmt.Errorf("libxlutil %q, cfgparse %q", x.Str, g.Str)
		}
		return nil
	}
	if len(x.List) != len(g.List) {
		return fmt.Errorf("libxlutil %v, cfgparse %d items", x, len(g.List))
	}
	for i := range x.List {
		if err := sameValue(x.List[i], g.List[i]); err != nil {
			return err
		}
	}
	return nil
}

// snippets are small hand-picked cases, each probing one libxlutil rule.
var snippets = []string{
	"", "\n", "#c\n", "x=1", "x=1\n$", "x=1$", "x=1 $", "x=1\n#", "x=1\n#abc", "x=1\n# abc",
	"x=1\r\n", "x=1\r", "x=\n", "x=", "x=1\ny=", "\n\nx=\n", "x=1 y=2\n", "x=abc\n", "x=-1\n",
	"x=[1,2,]\n", "x=[,]\n", "x=[\n1\n,\n2\n,\n]\n", "x=[[1,[2]],[]]\n", "x='a\\x41b'\n",
	"x='a\\012b'\n", "x='a\\01b'\n", "x='a\\0 1b'\n", "x='a\\01234'\n", "x='\\q'\n", "x=1\nx+=2\n",
	"x=1\nx+=[2]\n", "x=[1]\nx+=[2,3]\ny+='a'\n", "x = [ 'a',\n  'b' ]\nx += 'c'\n", "x=1\nx=2\n",
	"X=1\n", "x=0x10\ny=010\nz=09\n", "x='99999999999999999999'\n", "x=' -5'\ny='0x'\nz=''\n",
	"x=1;y=2;;\n", "x=1;\n", "x='abc\n", "x=\"a\\\"b'c\"\n", "x =\n 1\n", "x = 1\ny = 2 3\n",
	"x = [\n 1\n 2 ]\n", "x = 'a'\n\n\ny = [\n\n1,\n\n\n$ ]\n", "x=[\n", "x=[1,\n# c\n", "x=[1\n\n\n",
	"x=[1,\n$", "x=1\n'", "x=[1,\n  $", "x = # c\n 1\n", "x=1 # c\ny=[\n# d\n", "x= 1 2",
	"x=1\n\n=2\n", "x 1\n", "x\n", "=\n", "[1]\n", "x=[1]]\n", "x=[1 ,, 2]\n", "x=1\n;\n]",
	"\"a\"=1\n", "x+='a'\nx+='b'\nx+='c'\n", "x=[]\nx+=[]\n", "x=[[1]]\nx+=[[2],3]\n", "x='\\0-1'\n",
	"x='\\0+'\n", "x='\\7\\7'\n", "x='\\8'\n", "x='a\\\\'\n", "x='\\a\\b\\f\\n\\r\\t\\v'\n", "x=\"\\x\"\n",
	"x = 'a' '\\q'\n", "x.y_z9 = 1\n", "x = 1abc\n", "x = 1xz\n", "x = 0x\n", "x = 0xg\n",
	"x=1\n\n\n\n$", "x=1\n\n\n\n$\n", "x = 1\n\x00\n", "x = 1 # \x00 in a comment\n", "x=1\n\x00",
	"x='\\0\t1'\n", "x='\\0\v1'\n", "x='\\1\r12'\n", "x='\\6--1'\n", "x = '\\\n'\n", "x = 'a\\",
	"x = 9223372036854775807\n", "x = 9223372036854775808\n", "x='-9223372036854775808'\n",
	"x='-9223372036854775809'\n", "x='0x7fffffffffffffff'\n", "x = 0xffffffffffffffff\n",
	"x='  +0x1F'\n", "x='0X1f'\n", "x='1 '\n", "x = 0\nx += 0\n", "x += 0\n", "x += []\n",
	"x = [ 1 ]\nx = 'a'\nx += 'b'\n", "x = 'a'\nx = [1]\nx += [2]\n", "x = [1]\ny = 2\nx += [3]\n",
	"x = [\n] ; y = 1\n", "x = [ # c\n 1 ]\n", "x\t=\t1\t\n", "x = 1\f\n", "x = 1\v\n", "_x = 1\n",
	"x = .5\n", "x = (1)\n", "x = a:b\n", "x = 1 +\n", "x == 1\n", "x = = 1\n", "x += += 1\n",
	"x=[1,\n,2]\n", "x=[1\n,\n\n2\n]\n", "x = [[]\n]\n", "x = [[],]\n", "x = [1 2]\n", "x = []]\n",
	"x = ['a']\nx += ['b'] y = 1\n", "x = 'a' $\ny = 'b'\n", "x = 'a'\ny = 'b' $",
}

func TestDifferentialLibxlutil(t *testing.T) {
	requireXlutil(t)
	counts := map[string]int{}
	total, fails := 0, 0
	check := func(name string, data []byte) {
		total++
		class, err := diff(data)
		counts[class]++
		if err != nil {
			fails++
			if fails <= 20 {
				t.Errorf("%s: %v\ninput: %q", name, err, data)
			}
		}
	}

	files, err := filepath.Glob("../../cfgparse/testdata/xlcfg/*.cfg")
	if err != nil || len(files) < 40 {
		t.Fatalf("hand-written corpus missing: %d files, %v", len(files), err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(filepath.Base(f), data)
	}
	for i, s := range snippets {
		check(fmt.Sprintf("snippet %d", i), []byte(s))
	}
	hand := total

	n := 4000
	if testing.Short() {
		n = 500
	}
	g := newGen(20261125)
	for i := 0; i < n; i++ {
		check(fmt.Sprintf("generated #%d (seed 20261125)", i), g.config())
	}
	if fails > 20 {
		t.Errorf("... and %d more differences", fails-20)
	}

	classes := make([]string, 0, len(counts))
	for c := range counts {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var sum strings.Builder
	fmt.Fprintf(&sum, "%d configs (%d hand-written files and snippets, %d generated), %d differences:", total, hand, total-hand, fails)
	for _, c := range classes {
		fmt.Fprintf(&sum, "\n  %-40s %5d", c, counts[c])
	}
	t.Log(sum.String())
	// The generator must exercise both sides of every rule, or the test
	// proves little.
	for _, c := range []string{"accepted", "rejected: syntax error", "rejected: lexical error",
		"rejected: bad escape", "rejected: unterminated string", "rejected: += type clash"} {
		if counts[c] < 10 {
			t.Errorf("only %d configs with outcome %q", counts[c], c)
		}
	}
}

// TestLibxlutilAbortsOnNULInString documents why cfgparse rejects a NUL
// inside a quoted string instead of copying libxlutil: libxlutil aborts.
func TestLibxlutilAbortsOnNULInString(t *testing.T) {
	if os.Getenv("GOVSCSI_XLU_CHILD") == "1" {
		c, rc, err := Read("t.cfg", []byte("x = '\x00'\n"))
		fmt.Println("survived", rc, err)
		if c != nil {
			c.Close()
		}
		return
	}
	requireXlutil(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLibxlutilAbortsOnNULInString$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GOVSCSI_XLU_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Assertion") {
		t.Fatalf("expected libxlutil to abort on a NUL in a string; err=%v output:\n%s", err, out)
	}
	if _, perr := cfgparse.Parse("t.cfg", []byte("x = '\x00'\n")); !errors.Is(perr, cfgparse.ErrNULInString) {
		t.Fatalf("cfgparse: %v, want ErrNULInString", perr)
	}
}

// ---- generator of valid and subtly invalid configs ----

type gen struct {
	r *rand.Rand
	b []byte
}

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) pct(p int) bool { return g.r.IntN(100) < p }

func (g *gen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

var names = []string{"x", "y", "disk", "vif", "vscsi", "memory", "extra", "a.b", "n_1", "on_crash", "cpus"}

func (g *gen) ws() {
	switch g.r.IntN(6) {
	case 0:
		g.b = append(g.b, ' ')
	case 1:
		g.b = append(g.b, '\t')
	case 2:
		g.b = append(g.b, "  \t "...)
	}
}

func (g *gen) comment() {
	g.b = append(g.b, '#')
	g.b = append(g.b, g.pick("", " c", " a 'quoted' \"thing\" = [1,", "#", " x = 1")...)
	g.b = append(g.b, '\n')
}

// nl emits what nlok accepts: nothing, newlines, comment lines.
func (g *gen) nl() {
	for g.pct(30) {
		g.ws()
		if g.pct(30) {
			g.comment()
		} else {
			g.b = append(g.b, '\n')
		}
	}
}

func (g *gen) number() {
	if g.pct(30) {
		g.b = append(g.b, g.pick("0", "0x10", "010", "09", "0x", "1abc", "1x2", "9223372036854775807",
			"9223372036854775808", "0xffffffffffffffff", "0x7fffffffffffffff", "4096", "4097", "11", "00")...)
		return
	}
	g.b = append(g.b, byte('0'+g.r.IntN(10)))
	const tail = "0123456789abcdefx"
	for n := g.r.IntN(5); n > 0; n-- {
		g.b = append(g.b, tail[g.r.IntN(len(tail))])
	}
}

func (g *gen) str() {
	q := byte('\'')
	if g.pct(40) {
		q = '"'
	}
	g.b = append(g.b, q)
	for n := g.r.IntN(8); n > 0; n-- {
		switch k := g.r.IntN(100); {
		case k < 55:
			const plain = "abcxyz019 ,:/=;[]#-+.()_~ABCZ"
			g.b = append(g.b, plain[g.r.IntN(len(plain))])
		case k < 60:
			if q == '\'' {
				g.b = append(g.b, '"')
			} else {
				g.b = append(g.b, '\'')
			}
		case k < 63:
			g.b = append(g.b, g.pick("\t", "\r", "\v", "\f", "\xc3\xa9", "\xff")...)
		case k < 80:
			g.b = append(g.b, g.pick(`\\`, `\'`, `\"`, `\n`, `\t`, `\a`, `\b`, `\f`, `\r`, `\v`)...)
		case k < 93:
			g.b = append(g.b, '\\', byte('0'+g.r.IntN(8)))
			if g.pct(80) { // forms libxlutil accepts (and then drops)
				g.b = append(g.b, g.pick("12", "0 1", " 12", "-1", "+5", "123", "1234", "  1", "\t7", "00", "999")...)
			} else {
				g.b = append(g.b, g.pick("1", "", "9", "- 1", "+", "a1", " ")...)
			}
		case k < 98:
			g.b = append(g.b, g.pick("\\\\", "\\'", "\\\"")...)
		default:
			g.b = append(g.b, g.pick(`\q`, `\x41`, `\x`, `\8`, `\9`, `\ `, `\e`, `\0`)...)
		}
	}
	g.b = append(g.b, q)
}

func (g *gen) value(depth int) {
	switch k := g.r.IntN(100); {
	case k < 45 || depth > 2:
		g.str()
	case k < 70:
		g.number()
	default:
		g.b = append(g.b, '[')
		g.nl()
		n := g.r.IntN(4)
		for i := 0; i < n; i++ {
			g.ws()
			g.value(depth + 1)
			g.ws()
			g.nl()
			if i < n-1 || g.pct(30) {
				g.b = append(g.b, ',')
				g.ws()
				g.nl()
			}
		}
		g.ws()
		g.b = append(g.b, ']')
	}
}

func (g *gen) valid() []byte {
	g.b = g.b[:0]
	for n := g.r.IntN(7); n > 0; n-- {
		for g.pct(15) {
			g.ws()
			g.b = append(g.b, g.pick("\n", ";")...)
		}
		if g.pct(10) {
			g.comment()
		}
		g.ws()
		g.b = append(g.b, names[g.r.IntN(len(names))]...)
		g.ws()
		if g.pct(30) {
			g.b = append(g.b, "+="...)
		} else {
			g.b = append(g.b, '=')
		}
		g.ws()
		g.value(0)
		g.ws()
		if g.pct(15) {
			g.b = append(g.b, ' ')
			g.comment()
		} else if n > 1 || g.pct(70) {
			g.b = append(g.b, g.pick("\n", "\n", "\n", ";", "; ", ";\n")...)
		}
	}
	return append([]byte(nil), g.b...)
}

// mutate makes a subtle change: one bad or structural byte inserted,
// deleted or replaced, or the input cut short.
func (g *gen) mutate(b []byte) []byte {
	const bytesOfInterest = "\n\r\x00 \t'\"\\#;,[]=+-.:()$AZ_x0f9\xff"
	pos := 0
	if len(b) > 0 {
		pos = g.r.IntN(len(b) + 1)
	}
	c := bytesOfInterest[g.r.IntN(len(bytesOfInterest))]
	switch g.r.IntN(4) {
	case 0:
		return append(b[:pos:pos], append([]byte{c}, b[pos:]...)...)
	case 1:
		if pos < len(b) {
			return append(b[:pos:pos], b[pos+1:]...)
		}
	case 2:
		if pos < len(b) {
			out := append([]byte(nil), b...)
			out[pos] = c
			return out
		}
	}
	return b[:pos]
}

func (g *gen) config() []byte {
	b := g.valid()
	if g.pct(50) {
		for n := 1 + g.r.IntN(2); n > 0; n-- {
			b = g.mutate(b)
		}
	}
	return b
}

// FuzzDifferential feeds arbitrary bytes to both parsers; any difference
// (accept/reject, error line, values, getter results) fails.
func FuzzDifferential(f *testing.F) {
	requireXlutil(f)
	for _, s := range snippets {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("../../cfgparse/testdata/xlcfg/*.cfg")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	g := newGen(7)
	for i := 0; i < 50; i++ {
		f.Add(g.config())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		if _, err := diff(data); err != nil {
			t.Fatalf("%v\ninput: %q", err, data)
		}
	})
}

// TestDifferentialExhaustiveSmall compares the parsers on every input of up
// to 3 bytes over an alphabet of the bytes that matter to the lexer, alone
// and after the prefixes "x=", "x=[" and "x='": the corners (end of input,
// dropped last bytes, escapes at the end) that random generation may miss.
func TestDifferentialExhaustiveSmall(t *testing.T) {
	requireXlutil(t)
	const alphabet = "x1=+[],;#'\"\\\n\r\t 0-A.\x000"
	prefixes := []string{"", "x=", "x=[", "x='", "x=1\n"}
	total, fails := 0, 0
	counts := map[string]int{}
	buf := make([]byte, 0, 16)
	var walk func(depth int)
	walk = func(depth int) {
		for _, p := range prefixes {
			data := append([]byte(p), buf...)
			total++
			class, err := diff(data)
			counts[class]++
			if err != nil {
				fails++
				if fails <= 20 {
					t.Errorf("%v\ninput: %q", err, data)
				}
			}
		}
		if depth == 3 {
			return
		}
		for i := 0; i < len(alphabet); i++ {
			buf = append(buf, alphabet[i])
			walk(depth + 1)
			buf = buf[:len(buf)-1]
		}
	}
	walk(0)
	t.Logf("%d small inputs, %d differences, outcomes %v", total, fails, counts)
}

// BenchmarkLibxlutilReaddata is the reference point for cfgparse's
// BenchmarkParse: the real libxlutil on the same config (init + readdata +
// destroy, as xl does once per config).
func BenchmarkLibxlutilReaddata(b *testing.B) {
	requireXlutil(b)
	data, err := os.ReadFile("../../cfgparse/testdata/xlcfg/pv-guest.cfg")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c, rc, err := Read("pv-guest.cfg", data)
		if err != nil || rc != 0 {
			b.Fatal(rc, err)
		}
		c.Close()
	}
}
