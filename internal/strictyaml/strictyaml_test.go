package strictyaml

import (
	"strings"
	"testing"
)

type conf struct {
	A string            `yaml:"a"`
	L []string          `yaml:"l"`
	M map[string]string `yaml:"m"`
}

func TestDecode(t *testing.T) {
	var c conf
	if err := Decode([]byte("a: x\nl: [p, q]\nm: {k: v}\n"), &c); err != nil || c.A != "x" || len(c.L) != 2 || c.M["k"] != "v" {
		t.Errorf("good: %+v %v", c, err)
	}
	for _, in := range []string{"", "# nothing\n", "---\n", "a: x\n...\n"} {
		if err := Decode([]byte(in), &conf{}); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	for in, want := range map[string]string{
		"a: x\na: y\n":                       `line 2: key "a" given twice (first at line 1)`,
		"m:\n  k: 1\n  k: 2\n":               `line 3: key "k" given twice`,
		"l:\n  - {x: 1, x: 2}\n":             `key "x" given twice`,
		"a: x\n---\na: y\n":                  `line 2: a second YAML document`,
		"a: x\n---\n":                        "a second YAML document",
		"a: x\n---\n[\n":                     "after the first document",
		"b: 1\n":                             "field b not found",
		"a: [\n":                             "did not find expected",
		"x: &a {k: 1}\ny: *a\nz: *a\na: q\n": "field x not found", // aliases are fine, unknown keys are not
	} {
		err := Decode([]byte(in), &conf{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", in, err, want)
		}
	}
	if n, err := Document([]byte("x: &a {k: 1}\ny: *a\nz: *a\n")); err != nil || n == nil {
		t.Errorf("aliases: %v", err)
	}
}
