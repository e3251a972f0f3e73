package cfgparse

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

var updateXLCfg = flag.Bool("xlcfg.update", false, "rewrite cfgparse/testdata/xlcfg/*.golden")

// golden renders a parse result for the golden files.
func golden(c *Config, err error) string {
	if err != nil {
		var se *SyntaxError
		if !errors.As(err, &se) {
			return "unexpected error type: " + err.Error() + "\n"
		}
		return fmt.Sprintf("error: %s\ntoken: %q\nlibxlutil-line: %d\n", se.Error(), se.Token, se.XLULine)
	}
	return c.Dump()
}

func xlcfgFiles(t testing.TB) []string {
	files, err := filepath.Glob("testdata/xlcfg/*.cfg")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/xlcfg/*.cfg: %v", err)
	}
	return files
}

func TestXLCfgGolden(t *testing.T) {
	for _, f := range xlcfgFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".cfg")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(filepath.Base(f), data)
			if strings.HasPrefix(name, "err-") != (err != nil) {
				t.Errorf("err- prefix says fail=%v, got err=%v", strings.HasPrefix(name, "err-"), err)
			}
			got := golden(c, err)
			gf := strings.TrimSuffix(f, ".cfg") + ".golden"
			if *updateXLCfg {
				if err := os.WriteFile(gf, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(gf)
			if err != nil {
				t.Fatalf("%v (run go test ./cfgparse -run XLCfgGolden -xlcfg.update)", err)
			}
			if got != string(want) {
				t.Errorf("dump differs from %s\n--- got\n%s--- want\n%s", gf, got, want)
			}
		})
	}
}

// TestXLCfgSyntaxErrors pins the exact message, position and token of each
// kind of error, and the line libxlutil itself names (checked against the
// real library by tests/xlutil).
func TestXLCfgSyntaxErrors(t *testing.T) {
	cases := []struct {
		in      string
		msg     string // full Error()
		token   string
		xluLine int
	}{
		{"x = 'abc\n", `g.cfg:1:5: unterminated string "'abc"`, "'abc", 1},
		{"a = 1\nb = 2\nname = 'abc", `g.cfg:3:8: unterminated string "'abc"`, "'abc", 3},
		{"x = \"a\\\"\n", `g.cfg:1:5: unterminated string "\"a\\\""`, "\"a\\\"", 1},
		{"x = 'a\\\nb'\n", `g.cfg:1:5: unterminated string "'a\\"`, "'a\\", 1},
		{"x = $abc def\n", `g.cfg:1:5: unexpected character "$" in "$abc"`, "$abc", 1},
		{"x = 1\nX = 2\n", `g.cfg:2:1: unexpected character "X" in "X" (names are lowercase)`, "X", 2},
		{"x = -1\n", `g.cfg:1:5: unexpected character "-" in "-1" (values are quoted strings, numbers or [lists]; xl configs are not Python)`, "-1", 1},
		{"x = 1.5\n", `g.cfg:1:6: unexpected character "." in ".5" (values are quoted strings, numbers or [lists]; xl configs are not Python)`, ".5", 1},
		{"x = 1\r\n", `g.cfg:1:6: unexpected carriage return (xl configs need Unix line endings, not CRLF)`, "\r", 1},
		{"x = 1\n\x00\n", `g.cfg:2:1: unexpected NUL byte`, "\x00", 2},
		{"x = 1\n#abc", `g.cfg:2:1: comment on the last line must end with a newline: "#abc"`, "#abc", 2},
		{"x = 1\n# the end", `g.cfg:2:1: comment on the last line must end with a newline: "# the end"`, "# the end", 2},
		{"x + 1\n", `g.cfg:1:3: unexpected character "+" in "+" (values are quoted strings, numbers or [lists]; xl configs are not Python)`, "+", 1},
		{"x = 'a\\qb'\n", `g.cfg:1:7: invalid escape "\\q" in string "'a\\qb'"`, `\q`, 1},
		{"x = '\\x41'\n", `g.cfg:1:6: hex escape "\\x41" in string "'\\x41'" (libxlutil rejects every \x escape)`, `\x41`, 1},
		{"x = 'a\\01b'\n", `g.cfg:1:7: invalid octal escape "\\01b" in string "'a\\01b'" (libxlutil wants a backslash, an octal digit and at least two more digits)`, `\01b`, 1},
		{"x = 'a\x00b'\n", `g.cfg:1:7: NUL byte in quoted string`, "\x00", 1},
		{"x =\n 1\n", `g.cfg:1:4: unexpected end of line, expected a value (quoted string, number or '[') after "x ="`, "\n", 0},
		{"\n\nx = # c\n1\n", `g.cfg:3:5: unexpected comment "# c" (end of line), expected a value (quoted string, number or '[') after "x ="`, "# c", 2},
		{"x =", `g.cfg:1:4: unexpected end of file, expected a value (quoted string, number or '[') after "x ="`, "", 1},
		{"x = [1,\n\n", `g.cfg:3:1: unexpected end of file, expected a value or ']' after ','`, "", 2},
		{"x = [1,\n$", `g.cfg:2:2: unexpected end of file, expected a value or ']' after ','`, "", 1},
		{"x = abc\n", `g.cfg:1:5: unexpected name "abc", expected a value (quoted string, number or '[') after "x ="`, "abc", 1},
		{"x = 1 y = 2\n", `g.cfg:1:7: unexpected name "y", expected end of line or ';' after the value`, "y", 1},
		{"x = 1xyz\n", `g.cfg:1:7: unexpected name "yz", expected end of line or ';' after the value`, "yz", 1},
		{"x 1\n", `g.cfg:1:3: unexpected number "1", expected '=' or '+=' after "x"`, "1", 1},
		{"x\n", `g.cfg:1:2: unexpected end of line, expected '=' or '+=' after "x"`, "\n", 0},
		{"= 1\n", `g.cfg:1:1: unexpected "=", expected a setting name (lowercase), end of line or ';'`, "=", 1},
		{"'x' = 1\n", `g.cfg:1:1: unexpected string "'x'", expected a setting name (lowercase), end of line or ';'`, "'x'", 1},
		{"x = [,]\n", `g.cfg:1:6: unexpected ",", expected a value or ']' in the list`, ",", 1},
		{"x = [1,,2]\n", `g.cfg:1:8: unexpected ",", expected a value or ']' after ','`, ",", 1},
		{"x = [\n 1\n 2 ]\n", `g.cfg:3:2: unexpected number "2", expected ',' or ']' after a list item`, "2", 3},
		{"x = [1]]\n", `g.cfg:1:8: unexpected "]", expected end of line or ';' after the value`, "]", 1},
		{"x = 1\nx += [2]\n", `g.cfg:2:3: can't append a list to "x": it is a string (set at g.cfg:1:1)`, "+=", 2},
		{"x = [1]\nx += [2,\n 3]\nx += '4'\n", `g.cfg:4:3: can't append a string to "x": it is a list (set at g.cfg:2:1)`, "+=", 4},
		{"x = 's'\nx += [\n 1,\n 2\n]\n", `g.cfg:2:3: can't append a list to "x": it is a string (set at g.cfg:1:1)`, "+=", 5},
	}
	for _, tc := range cases {
		_, err := Parse("g.cfg", []byte(tc.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a *SyntaxError", tc.in, err)
			continue
		}
		if se.Error() != tc.msg || se.Token != tc.token || se.XLULine != tc.xluLine {
			t.Errorf("Parse(%q):\n got  %s | token %q | libxlutil line %d\n want %s | token %q | libxlutil line %d",
				tc.in, se.Error(), se.Token, se.XLULine, tc.msg, tc.token, tc.xluLine)
		}
		if !errors.Is(err, ErrSyntax) || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Parse(%q): error does not wrap ErrSyntax and EINVAL", tc.in)
		}
	}
}

// TestXLCfgAccepted: inputs libxlutil accepts that look wrong.
func TestXLCfgAccepted(t *testing.T) {
	cases := []struct {
		in   string
		want string // Format() of the result
	}{
		{"", ""},
		{"x=1\n$", "x = 1\n"},           // a bad last byte is dropped (flex EOF)
		{"x=1\r", "x = 1\n"},            // same for a lone final CR
		{"x=1\n#", "x = 1\n"},           // and a final "#"
		{"x=1\n'", "x = 1\n"},           // and a final quote
		{"x=1;;y=2;", "x = 1\ny = 2\n"}, // ; separates, empty statements are fine
		{"x=[1,2,]", "x = [1, 2]\n"},
		{"x='a\\012b'", "x = 'ab'\n"},  // octal escapes vanish
		{"x='a\\0 1b'", "x = 'ab'\n"},  // strtoul skips the blank
		{"x='a\\01234'", "x = 'a4'\n"}, // at most 3 bytes after the digit
		{"x='\\0-1'", "x = ''\n"},      // and takes a sign
		{"x = 1abc", "x = 1abc\n"},     // hex letters continue a number
	}
	for _, tc := range cases {
		c, err := Parse("a.cfg", []byte(tc.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := c.Format(); got != tc.want {
			t.Errorf("Parse(%q).Format() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func mustParse(t *testing.T, s string) *Config {
	t.Helper()
	c, err := Parse("t.cfg", []byte(s))
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return c
}

func TestXLCfgGetters(t *testing.T) {
	c := mustParse(t, `memory = 512
memory = 1024
hex = 0x10
oct = '010'
ws = ' -5'
bad = 09
big = '9223372036854775808'
neg = '-9223372036854775808'
s = "str"
s += 'ing'
n += 1
l = [ 'a', 'b' ]
l += [ 'c' ]
nested = [ 'a', [ 'b' ] ]
`)
	if v, pos, err := c.GetLong("memory"); err != nil || v != 1024 || pos.Line != 2 || pos.Col != 10 {
		t.Errorf("memory: %d %v %v", v, pos, err)
	}
	for name, want := range map[string]int64{"hex": 16, "oct": 8, "ws": -5, "neg": -9223372036854775808} {
		if v, _, err := c.GetLong(name); err != nil || v != want {
			t.Errorf("GetLong(%s) = %d, %v; want %d", name, v, err, want)
		}
	}
	for name, errno := range map[string]syscall.Errno{"bad": syscall.EINVAL, "big": syscall.ERANGE, "s": syscall.EINVAL,
		"n": syscall.EINVAL, "l": syscall.EINVAL, "absent": syscall.ESRCH} {
		if _, _, err := c.GetLong(name); !errors.Is(err, errno) {
			t.Errorf("GetLong(%s) = %v, want errno %v", name, err, errno)
		}
	}
	if _, _, err := c.GetLong("absent"); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent: %v", err)
	}
	if _, _, err := c.GetBoundedLong("memory", 0, 512); err == nil || !strings.Contains(err.Error(), "1024") {
		t.Errorf("bounded: %v", err)
	}
	if b, _, err := c.GetDefbool("hex"); err != nil || !b {
		t.Errorf("defbool: %v %v", b, err)
	}
	if s, _, err := c.GetString("s"); err != nil || s != "string" {
		t.Errorf("s = %q %v", s, err)
	}
	if s, _, err := c.GetString("n"); err != nil || s != "1" {
		t.Errorf("n = %q %v", s, err)
	}
	if _, _, err := c.GetString("l"); !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), `"l" is a list`) {
		t.Errorf("GetString(l): %v", err)
	}
	if l, pos, err := c.GetStringList("l"); err != nil || !reflect.DeepEqual(l, []string{"a", "b", "c"}) || pos[2].Line != 13 {
		t.Errorf("l = %q %v %v", l, pos, err)
	}
	if _, _, err := c.GetStringList("s"); !errors.Is(err, ErrWrongType) {
		t.Errorf("GetStringList(s): %v", err)
	}
	if _, _, err := c.GetStringList("nested"); !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), "t.cfg:14:17: nested[1] is a list") {
		t.Errorf("GetStringList(nested): %v", err)
	}
	if s := c.Lookup("memory"); s == nil || s.Value.Str != "1024" {
		t.Errorf("Lookup(memory) = %+v", s)
	}
	if c.Lookup("nope") != nil {
		t.Error("Lookup(nope) != nil")
	}
}

func TestStrtol(t *testing.T) {
	cases := []struct {
		in string
		v  int64
		n  int
		ok bool
	}{
		{"0", 0, 1, true}, {"10", 10, 2, true}, {"0x1F", 31, 4, true}, {"0X1f", 31, 4, true},
		{"017", 15, 3, true}, {"08", 0, 1, true}, {"0x", 0, 1, true}, {"0xg", 0, 1, true},
		{" \t\n\v\f\r+7", 7, 8, true}, {"-0x10", -16, 5, true}, {"", 0, 0, true}, {"-", 0, 0, true},
		{" ", 0, 0, true}, {"x", 0, 0, true},
		{"9223372036854775807", 9223372036854775807, 19, true},
		{"9223372036854775808", 0, 19, false},
		{"-9223372036854775808", -9223372036854775808, 20, true},
		{"-9223372036854775809", 0, 20, false},
		{"0xffffffffffffffffff", 0, 20, false},
		{"12abc", 12, 2, true},
	}
	for _, tc := range cases {
		v, n, ok := strtol(tc.in)
		if ok != tc.ok || n != tc.n || (ok && v != tc.v) {
			t.Errorf("strtol(%q) = %d,%d,%v want %d,%d,%v", tc.in, v, n, ok, tc.v, tc.n, tc.ok)
		}
	}
}

// sameValues compares two configs' statements ignoring positions.
func sameValues(a, b *Config) error {
	if len(a.Settings) != len(b.Settings) {
		return fmt.Errorf("%d settings vs %d", len(a.Settings), len(b.Settings))
	}
	for i := range a.Settings {
		x, y := a.Settings[i], b.Settings[i]
		if x.Name != y.Name || x.Append != y.Append {
			return fmt.Errorf("setting %d: %s/%v vs %s/%v", i, x.Name, x.Append, y.Name, y.Append)
		}
		if err := sameValue(x.Value, y.Value); err != nil {
			return fmt.Errorf("%s: %v", x.Name, err)
		}
		if err := sameValue(x.Operand, y.Operand); err != nil {
			return fmt.Errorf("%s operand: %v", x.Name, err)
		}
	}
	return nil
}

func sameValue(a, b *Value) error {
	if a.Kind != b.Kind || a.Str != b.Str || a.Number != b.Number || len(a.List) != len(b.List) {
		return fmt.Errorf("%+v vs %+v", a, b)
	}
	for i := range a.List {
		if err := sameValue(a.List[i], b.List[i]); err != nil {
			return err
		}
	}
	return nil
}

func TestXLCfgFormatRoundTrip(t *testing.T) {
	for _, f := range xlcfgFiles(t) {
		data, _ := os.ReadFile(f)
		c, err := Parse(f, data)
		if err != nil {
			continue
		}
		c2, err := Parse("formatted", []byte(c.Format()))
		if err != nil {
			t.Errorf("%s: Format output does not parse: %v\n%s", f, err, c.Format())
			continue
		}
		if err := sameValues(c, c2); err != nil {
			t.Errorf("%s: round trip: %v", f, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, file := range xlcfgFiles(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("x = [ 'a\\0 1', [ 0x1f, \"\\\"\" ], ]\nx += [ 1 ]\ny = 'a'; y += \"b\""))
	// Issue 14: nesting past MaxListDepth (a million '[' overflowed the
	// stack) and += chains.
	f.Add([]byte("x = " + strings.Repeat("[", MaxListDepth+3) + "\n"))
	f.Add([]byte("x = [1]\nx += [2]\nx += [3]\ny = 'a'\ny += 'b'\ny += 'c'\nx = [4]\nx += [5]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.cfg", data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error is not a *SyntaxError: %v", err)
			}
			if se.Pos.Line < 1 || se.Pos.Col < 1 || se.XLULine < 0 || se.XLULine > se.Pos.Line+strings.Count(string(data), "\n") {
				t.Fatalf("bad error position: %+v", se)
			}
			return
		}
		out := c.Format()
		c2, err := Parse("formatted", []byte(out))
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%q", err, out)
		}
		if err := sameValues(c, c2); err != nil {
			t.Fatalf("round trip: %v\n%q", err, out)
		}
		for _, s := range c.Settings {
			// The getters must never panic, whatever the value.
			c.GetString(s.Name)
			c.GetLong(s.Name)
			c.GetStringList(s.Name)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/xlcfg/pv-guest.cfg")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("pv-guest.cfg", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSyntaxError(b *testing.B) {
	data := []byte("name = 'guest'\nmemory = 512\nvscsi = [ '/dev/sg1, 0:0:0:0'\n '/dev/sg2, 0:0:1:0' ]\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bad.cfg", data); err == nil {
			b.Fatal("no error")
		}
	}
}
