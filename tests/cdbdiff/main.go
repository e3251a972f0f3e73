// Command cdbdiff is the differential CDB check of govscsi's emulated LUNs
// against LIO (docs/testing.md, scenario cdb-diff): it prints one list of
// CDBs, the guest-side runner that sends each of them with sg_raw and
// records status and sense, and compares two sets of results.
//
//	cdbdiff list [-blocks N] [-bs B]      the case list (one case a line)
//	cdbdiff runner                         the guest runner (sh RUNNER DEVICE LIST)
//	cdbdiff compare [-all] [-blocks N] [-bs B] LIO-RESULTS OUR-RESULTS
//
// compare prints every difference in status, sense key and ASC/ASCQ with
// its opcode class and whether it is intended (intended.go, the same list
// as docs/backend.md), then a count per class. It exits 1 if a difference
// is not intended or a case has no answer, 0 otherwise.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) int {
	fmt.Fprintln(w, "usage: cdbdiff list [-blocks N] [-bs B] | runner | compare [-all] [-blocks N] [-bs B] LIO-RESULTS OUR-RESULTS")
	return 2
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usage(stderr)
	}
	fs := flag.NewFlagSet("cdbdiff "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	blocks := fs.Uint64("blocks", 131072, "capacity of both LUNs in logical blocks")
	bs := fs.Int("bs", 512, "logical block size of both LUNs")
	all := fs.Bool("all", false, "compare: print intended differences too")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *bs != 512 && *bs != 4096 {
		fmt.Fprintf(stderr, "cdbdiff: -bs %d: want 512 or 4096\n", *bs)
		return 2
	}
	if *blocks < 1024 || *blocks > 1<<32 {
		fmt.Fprintf(stderr, "cdbdiff: -blocks %d: want 1024..2^32\n", *blocks)
		return 2
	}
	g := Geometry{Blocks: *blocks, BlockSize: *bs}
	switch args[0] {
	case "list":
		if fs.NArg() != 0 {
			return usage(stderr)
		}
		for _, c := range Cases(g) {
			fmt.Fprintln(stdout, c.Format())
		}
		return 0
	case "runner":
		fmt.Fprint(stdout, guestRunner)
		return 0
	case "compare":
		if fs.NArg() != 2 {
			return usage(stderr)
		}
		var res [2]map[string]Outcome
		for i, p := range fs.Args() {
			f, err := os.Open(p)
			if err != nil {
				fmt.Fprintf(stderr, "cdbdiff: %v\n", err)
				return 2
			}
			res[i], err = ParseResults(f)
			f.Close()
			if err != nil {
				fmt.Fprintf(stderr, "cdbdiff: %s: %v\n", p, err)
				return 2
			}
		}
		return report(stdout, Cases(g), res[0], res[1], *all)
	}
	return usage(stderr)
}

// report prints the differences and the per-class counts; it returns the
// exit status (1 when something is neither equal nor intended).
func report(w io.Writer, cases []Case, lio, ours map[string]Outcome, all bool) int {
	diffs := Compare(cases, lio, ours)
	total := map[string]int{}
	for _, c := range cases {
		total[c.Class]++
	}
	open, kept := map[string]int{}, map[string]int{}
	for _, d := range diffs {
		if d.Intended != nil {
			kept[d.Case.Class]++
			if !all {
				continue
			}
		} else {
			open[d.Case.Class]++
		}
		tag := "DIFF    "
		if d.Intended != nil {
			tag = "intended"
		}
		switch d.Missing {
		case "":
			fmt.Fprintf(w, "%s %-12s %-40s lio=%-28s ours=%s", tag, d.Case.Class, d.Case.ID, d.LIO, d.Our)
			if d.Intended != nil {
				fmt.Fprintf(w, "  (%s)", d.Intended.Reason)
			}
			fmt.Fprintln(w)
		default:
			fmt.Fprintf(w, "MISSING  %-12s %-40s no answer from %s\n", d.Case.Class, d.Case.ID, d.Missing)
		}
	}
	fmt.Fprintf(w, "\n%-14s %6s %6s %9s\n", "class", "cases", "diffs", "intended")
	var nc, nd, ni int
	classes := append([]string(nil), Classes...)
	for c := range total {
		if !contains(classes, c) {
			classes = append(classes, c)
		}
	}
	sort.SliceStable(classes, func(i, j int) bool { return index(Classes, classes[i]) < index(Classes, classes[j]) })
	for _, c := range classes {
		fmt.Fprintf(w, "%-14s %6d %6d %9d\n", c, total[c], open[c], kept[c])
		nc, nd, ni = nc+total[c], nd+open[c], ni+kept[c]
	}
	fmt.Fprintf(w, "%-14s %6d %6d %9d\n", "total", nc, nd, ni)
	fmt.Fprintf(w, "cdbdiff: %d cases, %d differences not intended, %d intended\n", nc, nd, ni)
	if nd > 0 {
		return 1
	}
	return 0
}

func contains(s []string, x string) bool { return index(s, x) < len(s) }

func index(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return len(s)
}

// guestRunner is the guest side: busybox sh, sg_raw and awk only. For each
// case it sends the CDB with sg_raw -v (which prints the status and the
// raw sense bytes) and reduces sg_raw's output to one line:
// id|status words|sense bytes joined by '.'|data-in bytes received.
// A transport or OS error (no SCSI status) gives "ERR:<text>".
var guestRunner = strings.TrimLeft(`
# cdbdiff guest runner: sh runner.sh DEVICE LIST (from "cdbdiff runner")
dev=$1 list=$2 raw=/tmp/cdbdiff.raw d=/tmp/cdbdiff.data
mk() {
	: >"$d"
	old=$IFS
	IFS=+
	for t in $1; do
		case $t in
		z*) head -c "${t#z}" /dev/zero >>"$d" ;;
		f*) n=${t#f}; v=${n#*:}; n=${n%%:*}; head -c "$n" /dev/zero | tr '\000' "\\$v" >>"$d" ;;
		p*) printf "${t#p}" >>"$d" ;;
		esac
	done
	IFS=$old
}
: >"$raw"
while IFS='|' read -r id class dir len cdb data; do
	case $dir in
	i) set -- -r "$len" -o /dev/null ;;
	o) mk "$data"; set -- -s "$len" -i "$d" ;;
	*) set -- ;;
	esac
	echo "@@ $id" >>"$raw"
	# shellcheck disable=SC2086 # cdb: one argument per byte
	sg_raw -v -t 20 "$@" "$dev" $cdb </dev/null >>"$raw" 2>&1
done <"$list"
awk '
function out() {
	if (id == "") return
	if (te != "") st = "ERR:" te
	else if (st == "") st = "ERR:no status"
	sub(/^\./, "", sense)
	print id "|" st "|" sense "|" n
}
/^@@ / { out(); id = $2; st = ""; sense = ""; n = 0; ins = 0; te = ""; next }
ins && /^[ \t]*([0-9a-fA-F][0-9a-fA-F][ \t]*)+$/ {
	line = $0; gsub(/^[ \t]+|[ \t]+$/, "", line); gsub(/[ \t]+/, ".", line)
	sense = sense "." line
	next
}
{ ins = 0 }
/Raw sense data/ { ins = 1; next }
/^SCSI Status:/ { s = $0; sub(/^SCSI Status:[ \t]*/, "", s); sub(/[ \t]+$/, "", s); st = s; next }
/^(Writing|Received) [0-9]+ bytes/ { n = $2 }
/^>>> (transport|os) error|^do_scsi_pt/ { s = $0; sub(/^>>> /, "", s); gsub(/\|/, "/", s); te = s }
END { out() }
' "$raw"
`, "\n")
