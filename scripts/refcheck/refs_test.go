package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestDangling checks the fixture tree in testdata/tree: every kind of
// reference is found and resolved against that tree, and each dangling one
// is reported with its file and line, exactly as testdata/want.txt lists.
// (The fixtures live under testdata so the repository's own check skips
// them.)
func TestDangling(t *testing.T) {
	refs, err := Check("testdata/tree")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	resolved := 0
	for _, r := range refs {
		if r.Err != "" {
			got = append(got, r.String())
		} else {
			resolved++
		}
	}
	b, err := os.ReadFile("testdata/want.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("dangling references:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Resolved (a range is checked at its ends): in a/code.go the
	// protocol doc, its sections 1.2 and 2.1, the backend doc and its
	// section 1, two pitfalls, the bare 2.1, three more citations of the
	// backend doc and two of its headings by name; in docs/backend.md the
	// protocol doc, its 2.1, its own section 1 and a pitfall; the two rows
	// of the pitfall table; in notes.txt the protocol doc and its section 2.
	if resolved != 21 {
		for _, r := range refs {
			if r.Err == "" {
				t.Log(r)
			}
		}
		t.Errorf("%d references resolved, want 21", resolved)
	}
}

// TestNoProtocolDoc: without the protocol doc every pitfall dangles.
func TestNoProtocolDoc(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "x.go"), []byte("package x // P15\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	refs, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Err == "" || refs[0].Text != "P15" {
		t.Fatalf("refs %v, want one dangling P15", refs)
	}
}

// TestRepository: every reference of this repository resolves (what
// `make check` enforces with `go run ./scripts/refcheck`).
func TestRepository(t *testing.T) {
	refs, err := Check("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if r.Err != "" {
			t.Error(r)
		}
	}
	if len(refs) < 100 {
		t.Fatalf("only %d references found in the repository: is the scan broken?", len(refs))
	}
}
