package main

import (
	"bytes"
	"fmt"
	"go/scanner"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kinds of reference.
const (
	KindPitfall = "pitfall" // P15
	KindSection = "section" // protocol.md §2.1, docs/backend.md §7, a bare §3
	KindFile    = "file"    // docs/hotplug.md
	KindName    = "name"    // docs/host-integration.md, "Resume"
)

// ProtocolDoc defines the pitfalls and is what a bare § outside a doc
// refers to.
const ProtocolDoc = "docs/protocol.md"

// Ref is one reference found in a file.
type Ref struct {
	File   string // citing file, relative to the root
	Line   int
	Kind   string
	Text   string // as cited: "P15", "protocol.md §2.1", ...
	Target string // the doc it points into (KindSection, KindName, KindFile)
	Err    string // why it does not resolve; "" if it does
}

func (r Ref) String() string {
	if r.Err == "" {
		return fmt.Sprintf("%s:%d: %s %s", r.File, r.Line, r.Kind, r.Text)
	}
	return fmt.Sprintf("%s:%d: %s %s: %s", r.File, r.Line, r.Kind, r.Text, r.Err)
}

// doc is what a markdown file offers to references: numbered sections and
// heading titles.
type doc struct {
	numbers map[string]bool // "2", "2.1"
	titles  []string        // lower-case, markup removed
}

// Tree is the set of files references may point at.
type Tree struct {
	Root  string
	Files []string // slash-separated, relative to Root
	have  map[string]bool
	docs  map[string]*doc
	// pitfalls are the P numbers ProtocolDoc defines in its pitfall table.
	pitfalls map[int]bool
}

// ListFiles lists the files under root: git's tracked files and the new
// ones it does not ignore when root is a work tree, else every regular file.
func ListFiles(root string) ([]string, error) {
	if out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output(); err == nil {
		var files []string
		for _, f := range strings.Split(string(out), "\x00") {
			if f == "" {
				continue
			}
			// A file deleted in the work tree but not yet in the index.
			if st, err := os.Stat(filepath.Join(root, f)); err == nil && st.Mode().IsRegular() {
				files = append(files, f)
			}
		}
		return files, nil
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files, err
}

// NewTree reads the docs of files (every *.md) under root.
func NewTree(root string, files []string) (*Tree, error) {
	t := &Tree{Root: root, Files: files, have: map[string]bool{}, docs: map[string]*doc{}, pitfalls: map[int]bool{}}
	for _, f := range files {
		t.have[f] = true
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		t.docs[f] = parseDoc(string(b))
		if f == ProtocolDoc {
			for _, m := range pitfallRow.FindAllStringSubmatch(string(b), -1) {
				n, _ := strconv.Atoi(m[1])
				t.pitfalls[n] = true
			}
		}
	}
	return t, nil
}

var (
	heading    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	headingNum = regexp.MustCompile(`^(\d+(?:\.\d+)*)\.?(?:\s|$)`)
	fence      = regexp.MustCompile("^\\s*(```|~~~)")
	markup     = strings.NewReplacer("`", "", "*", "", "_", " ")
	// pitfallRow is a row of the pitfall table: "| P15 | ...".
	pitfallRow = regexp.MustCompile(`(?m)^\|\s*P(\d+)\s*\|`)
)

func parseDoc(text string) *doc {
	d := &doc{numbers: map[string]bool{}}
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		title := m[1]
		if n := headingNum.FindStringSubmatch(title); n != nil {
			d.numbers[n[1]] = true
		}
		d.titles = append(d.titles, normName(title))
	}
	return d
}

// normName lower-cases a heading or a cited name, drops markup and folds
// line breaks (with the comment leaders of the next line) into one space.
func normName(s string) string {
	s = commentLeader.ReplaceAllString(s, " ")
	s = markup.Replace(strings.ToLower(s))
	return strings.Join(strings.Fields(s), " ")
}

var commentLeader = regexp.MustCompile(`\n\s*(?://+|#+|\*|\.\\")?`)

// Scanned reports whether a file's references are checked: text files
// outside testdata directories (fixtures cite what they like), other
// than go.sum.
func Scanned(f string) bool {
	for _, c := range strings.Split(f, "/") {
		if c == "testdata" {
			return false
		}
	}
	return path.Base(f) != "go.sum"
}

// Refs finds and resolves the references of one file.
func (t *Tree) Refs(f string) ([]Ref, error) {
	b, err := os.ReadFile(filepath.Join(t.Root, f))
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, nil // binary
	}
	text := string(b)
	if strings.HasSuffix(f, ".go") {
		text = goCommentsAndStrings(b)
	}
	return t.refsIn(f, text), nil
}

// goCommentsAndStrings blanks out everything in Go source but comments and
// string literals (identifiers such as Percentiles.P50 are not pitfalls),
// keeping every byte offset and line.
func goCommentsAndStrings(src []byte) string {
	out := bytes.Repeat([]byte(" "), len(src))
	for i, c := range src {
		if c == '\n' {
			out[i] = '\n'
		}
	}
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var s scanner.Scanner
	s.Init(file, src, nil, scanner.ScanComments)
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.COMMENT || tok == token.STRING {
			off := file.Offset(pos)
			copy(out[off:], src[off:off+len(lit)])
		}
	}
	return string(out)
}

var (
	// A file reference: a path ending in .md (not part of a longer word).
	fileRef = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])((?:\.\.?/)*[A-Za-z0-9_-][A-Za-z0-9_./-]*\.md)\b`)
	// What may stand between a file reference and what it cites inside
	// the file: spaces, line breaks with their comment leaders, quotes,
	// backticks, a comma or "'s".
	gap = `(?:'s)?[\s,` + "`" + `'"*/#(]*`
	// A section chain after a file: §2.1, §2.2 / §2.1-2.2 / section 6.
	sectionAfter = regexp.MustCompile(`^` + gap + `(?:§\s?|section\s+)(\d+(?:\.\d+)*)`)
	sectionMore  = regexp.MustCompile(`^(?:\s*(?:,|/|and)\s*(?:§\s?|section\s+)|\s*[-–]\s*(?:§\s?)?)(\d+(?:\.\d+)*)`)
	// A section name after a file: docs/hotplug.md, "udev" / 's "why ...".
	nameAfter = regexp.MustCompile(`^(?:'s\s+|,\s*(?:(?://+|#+|\*)\s*)?)"([^"]{1,120})"`)
	// A bare section reference.
	bareSection = regexp.MustCompile(`§\s?(\d+(?:\.\d+)*)`)
	// A pitfall: P and a number, not inside a word or after a dot.
	pitfall = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.])P(\d+)\b`)
)

func (t *Tree) refsIn(f, text string) []Ref {
	line := lineIndex(text)
	var refs []Ref
	consumed := map[int]bool{} // offsets of § already taken by a file's chain
	for _, m := range fileRef.FindAllStringSubmatchIndex(text, -1) {
		name := text[m[2]:m[3]]
		target, ok := t.resolveFile(f, name)
		r := Ref{File: f, Line: line(m[2]), Kind: KindFile, Text: name, Target: target}
		if !ok {
			r.Err = "no such file in the repository"
		}
		refs = append(refs, r)
		rest := m[3]
		if s := sectionAfter.FindStringSubmatchIndex(text[rest:]); s != nil {
			nums := []string{text[rest+s[2] : rest+s[3]]}
			consumed[rest+strings.LastIndex(text[rest:rest+s[2]], "§")] = true
			next := rest + s[1]
			for {
				c := sectionMore.FindStringSubmatchIndex(text[next:])
				if c == nil {
					break
				}
				if i := strings.LastIndex(text[next:next+c[2]], "§"); i >= 0 {
					consumed[next+i] = true
				}
				nums = append(nums, text[next+c[2]:next+c[3]])
				next += c[1]
			}
			for _, n := range nums {
				refs = append(refs, t.section(f, line(m[2]), name+" §"+n, target, ok, n))
			}
		} else if s := nameAfter.FindStringSubmatchIndex(text[rest:]); s != nil {
			cited := text[rest+s[2] : rest+s[3]]
			refs = append(refs, t.name(f, line(m[2]), name, cited, target, ok))
		}
	}
	for _, m := range bareSection.FindAllStringSubmatchIndex(text, -1) {
		if consumed[m[0]] {
			continue
		}
		target := ProtocolDoc
		if strings.HasSuffix(f, ".md") {
			target = f // a doc's bare § is its own section
		}
		n := text[m[2]:m[3]]
		refs = append(refs, t.section(f, line(m[0]), "§"+n, target, t.have[target], n))
	}
	for _, m := range pitfall.FindAllStringSubmatchIndex(text, -1) {
		n, _ := strconv.Atoi(text[m[2]:m[3]])
		r := Ref{File: f, Line: line(m[2]), Kind: KindPitfall, Text: "P" + text[m[2]:m[3]], Target: ProtocolDoc}
		if !t.pitfalls[n] {
			r.Err = "not in the pitfall table of " + ProtocolDoc
		}
		refs = append(refs, r)
	}
	sort.SliceStable(refs, func(i, j int) bool { return refs[i].Line < refs[j].Line })
	return refs
}

func (t *Tree) section(f string, line int, text, target string, exists bool, n string) Ref {
	r := Ref{File: f, Line: line, Kind: KindSection, Text: text, Target: target}
	switch d := t.docs[target]; {
	case !exists:
		r.Err = "the file is not in the repository"
	case d == nil:
		r.Err = target + " is not a markdown doc"
	case !d.numbers[n]:
		r.Err = target + " has no section " + n
	}
	return r
}

func (t *Tree) name(f string, line int, file, cited, target string, exists bool) Ref {
	r := Ref{File: f, Line: line, Kind: KindName, Text: fmt.Sprintf("%s, %q", file, normName(cited)), Target: target}
	d := t.docs[target]
	if !exists || d == nil {
		r.Err = "the file is not in the repository"
		return r
	}
	want := strings.TrimSuffix(strings.TrimSpace(normName(cited)), "...")
	for _, title := range d.titles {
		if strings.Contains(title, want) {
			return r
		}
	}
	r.Err = target + " has no heading containing " + strconv.Quote(want)
	return r
}

// resolveFile finds a cited .md file in the tree: a bare name in docs/,
// else next to the citing file, else from the root; a path from the root,
// else relative to the citing file. Nothing outside the root counts.
func (t *Tree) resolveFile(from, name string) (string, bool) {
	var cands []string
	if !strings.Contains(name, "/") {
		cands = append(cands, "docs/"+name)
	}
	cands = append(cands, path.Join(path.Dir(from), name), path.Clean(name))
	for _, c := range cands {
		if strings.HasPrefix(c, "../") || c == ".." {
			continue
		}
		if t.have[c] {
			return c, true
		}
	}
	return path.Join(path.Dir(from), name), false
}

// lineIndex returns a function from byte offset to 1-based line number.
func lineIndex(text string) func(int) int {
	var starts []int
	starts = append(starts, 0)
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			starts = append(starts, i+1)
		}
	}
	return func(off int) int { return sort.SearchInts(starts, off+1) }
}

// Check finds every reference of every scanned file under root.
func Check(root string) ([]Ref, error) {
	files, err := ListFiles(root)
	if err != nil {
		return nil, err
	}
	t, err := NewTree(root, files)
	if err != nil {
		return nil, err
	}
	var all []Ref
	for _, f := range files {
		if !Scanned(f) {
			continue
		}
		refs, err := t.Refs(f)
		if err != nil {
			return nil, err
		}
		all = append(all, refs...)
	}
	return all, nil
}
