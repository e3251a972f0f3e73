// Command refcheck checks that every reference in the repository's code and
// docs resolves inside the repository (`make check` runs it):
//
//   - pitfall numbers, P1 to P31, must be rows of the pitfall table of
//     docs/protocol.md;
//   - section references must name a numbered heading of their doc:
//     "protocol.md §2.1", "docs/backend.md §7", "§2.1, §2.2", "§2.1-2.2";
//     a bare "§3" in a doc is that doc's own section, anywhere else it is
//     docs/protocol.md's;
//   - cited docs ("docs/hotplug.md", "architecture.md" for docs/, a path
//     relative to the citing file) must be files of the repository, not
//     background material outside it;
//   - section names ("docs/host-integration.md, "Resume"") must occur in
//     one of that doc's headings.
//
// Go files are checked in their comments and string literals only. Files
// under testdata directories are not checked. It prints each dangling
// reference as file:line and exits 1 if there is one.
//
//	go run ./scripts/refcheck [-root DIR] [-list]
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	root := flag.String("root", ".", "top of the tree")
	list := flag.Bool("list", false, "print every reference, resolved or not")
	flag.Parse()
	refs, err := Check(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "refcheck:", err)
		os.Exit(2)
	}
	total, dangling := map[string]int{}, map[string]int{}
	bad := 0
	for _, r := range refs {
		total[r.Kind]++
		if r.Err != "" {
			dangling[r.Kind]++
			bad++
		}
		if *list || r.Err != "" {
			fmt.Println(r)
		}
	}
	fmt.Fprintf(os.Stderr, "refcheck: %d references (%s), %d dangling\n", len(refs), counts(total, dangling), bad)
	if bad > 0 {
		os.Exit(1)
	}
}

func counts(total, dangling map[string]int) string {
	s := ""
	for _, k := range []string{KindPitfall, KindSection, KindFile, KindName} {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, total[k])
		if dangling[k] > 0 {
			s += fmt.Sprintf(" of which %d dangling", dangling[k])
		}
	}
	return s
}
