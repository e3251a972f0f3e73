package strictyaml

import (
	"bytes"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
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

// FuzzDocument: Document never panics, and what it accepts is one
// document without a key given twice: yaml.v3, decoding the same text
// into a generic value (where it does check duplicates), finds none, and
// a Decoder finds no second document.
func FuzzDocument(f *testing.F) {
	for _, s := range []string{"a: 1\n", "a: 1\na: 2\n", "a: {b: 1, b: 2}\n", "- {x: 1}\n- {x: 1, x: 2}\n", "a: 1\n---\nb: 2\n",
		"a: &x {k: 1}\nb: *x\n", "<<: {a: 1}\na: 2\n", "", "---\n", "a: [\n", "? [a]\n: 1\n", "a: 1\n...\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := Document(data)
		if err != nil {
			return
		}
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil && strings.Contains(err.Error(), "already defined") {
			t.Fatalf("accepted %q, but yaml.v3 finds a duplicate: %v", data, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		docs := 0
		for {
			var n yaml.Node
			if err := dec.Decode(&n); err != nil {
				break
			}
			docs++
		}
		if docs > 1 {
			t.Fatalf("accepted %q with %d documents", data, docs)
		}
		if root != nil && docs == 0 {
			t.Fatalf("a root node from %q without a document", data)
		}
	})
}
