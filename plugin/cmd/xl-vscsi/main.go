// Command xl-vscsi is govscsi's toolstack CLI for Xen PV SCSI, in the style
// of xl: `xl-vscsi <subcommand> [options] <args>`.
//
// Subcommands live in the commands table below; adding one is one entry
// (name, usage, help text, and a setup function that registers its flags
// and returns its runner).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/internal/version"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

const prog = "xl-vscsi"

// env is what a subcommand may touch. Tests replace stat to fake device
// nodes; everything else about the host comes in through flags.
type env struct {
	stdout, stderr io.Writer
	stat           cfgparse.StatFunc
}

// runner runs a subcommand with its positional arguments (flags already
// parsed).
type runner func(e *env, args []string) error

type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string // one line, for the command list
	help    string // paragraph(s) for `help <cmd>`
	// setup registers the command's flags and returns its runner.
	setup func(fs *flag.FlagSet) runner
}

// commands is the dispatch table, in the order `help` lists them.
var commands = []command{
	{
		name:    "apply",
		args:    "[options] <ConfigFile> <Domain>",
		summary: "Write the vscsi= devices of a domain config to xenstore",
		help: `Turn the vscsi= list of an xl domain config into the xenstore trees of
the vscsiif protocol for <Domain> (backend, then frontend, per vhost).
New vhosts are created, entries for vhosts the domain already has are
hot-added; the command waits until every device is connected on both sides
and undoes its writes if one fails. --dry-run prints the writes and touches
nothing (it does not read xenstore, so <Domain> must be a number there).
Text output shows one '<path> = "<value>"' line per node in write order;
--json also lists the parent directories created first (kind "dir") and
every node's permissions.`,
		setup: setupApply,
	},
	// The commands below talk to xenstore (toolstack.go).
	scsiAttach, scsiDetach, scsiList,
	alias("vscsi-attach", scsiAttach), alias("vscsi-detach", scsiDetach), alias("vscsi-list", scsiList),
	{name: "create", args: "[options] <ConfigFile> [xl create options]",
		summary: "xl create a domain paused, attach its vscsi= devices, unpause it", help: createHelp, setup: setupCreate},
	{name: "restore", args: "[options] [--] [xl restore options] [<ConfigFile>] <CheckpointFile>",
		summary: "xl restore a domain paused, attach its vscsi= devices, unpause it", help: restoreHelp, setup: setupRestore},
	{name: "migrate", args: "[options] [--] [xl migrate options] <Domain> <Host>",
		summary: "xl migrate a domain, the receiver attaching its vscsi= devices before it runs", help: migrateHelp, setup: setupMigrate},
	{name: "migrate-receive", args: "[options] [--] [xl migrate-receive options]",
		summary: "The receiving end of migrate (run over ssh)", help: migrateReceiveHelp, setup: setupMigrateReceive},
	{name: "destroy-vhost", args: "[options] <Domain> <Vhost>",
		summary: "Remove a whole vhost (SCSI controller) from a running domain", help: destroyHelp, setup: setupDestroyVHost},
	{name: "cleanup", args: "[options]",
		summary: "Remove vscsi xenstore nodes left behind by vanished domains", help: cleanupHelp, setup: setupCleanup},
	{name: "stats", args: "[--socket P] [--json]",
		summary: "Show the userspace backend's per-LUN statistics", help: statsHelp, setup: setupStats},
	{name: "backend-stop", args: "[--disconnect] [--socket P] [--timeout D]",
		summary: "Stop the userspace backend (a handover, or disconnecting every guest)", help: backendStopHelp, setup: setupBackendStop},
}

// The scsi-* commands also go by SUSE's vscsi-* names (alias).
var (
	scsiAttach = command{name: "scsi-attach", args: "[options] <Domain> <PhysDevice> <VirtDevice>[,feature-host] [feature-host]",
		summary: "Attach a SCSI device to a running domain", help: attachHelp, setup: setupAttach}
	scsiDetach = command{name: "scsi-detach", args: "[options] <Domain> <VirtDevice>",
		summary: "Detach a SCSI device from a running domain", help: detachHelp, setup: setupDetach}
	scsiList = command{name: "scsi-list", args: "[options] <Domain>...",
		summary: "List the vscsi vhosts and devices of domains", help: listHelp, setup: setupList}
)

// alias is c under another name.
func alias(name string, c command) command {
	c.name, c.summary = name, "Alias of "+c.name
	return c
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	return runEnv(&env{stdout: stdout, stderr: stderr, stat: cfgparse.OSStat}, args)
}

func runEnv(e *env, args []string) int {
	args = hoistGlobalFlags(args) // toolstack.go
	if len(args) == 0 {
		mainUsage(e.stderr)
		return 1
	}
	switch args[0] {
	case "version", "-version", "--version":
		fmt.Fprintf(e.stdout, "%s %s\n", prog, version.String())
		return 0
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			c := lookup(args[1])
			if c == nil {
				fmt.Fprintf(e.stderr, "%s: unknown command %q (see '%s help')\n", prog, args[1], prog)
				return 1
			}
			cmdUsage(e.stdout, c)
			return 0
		}
		mainUsage(e.stdout)
		return 0
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "%s: unknown command %q (see '%s help')\n", prog, args[0], prog)
		return 1
	}
	fs := flag.NewFlagSet(prog+" "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // we print errors and usage ourselves
	r := c.setup(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		cmdUsage(e.stdout, c)
		return 0
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "%s %s: %v\n", prog, c.name, err)
		fmt.Fprintf(e.stderr, "Usage: %s %s %s (see '%s help %s')\n", prog, c.name, c.args, prog, c.name)
		return 1
	}
	if err := r(e, pos); err != nil {
		var ue usageError
		// A config may have several bad entries (errors.Join): one
		// prefixed line each.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(e.stderr, "%s %s: %s\n", prog, c.name, line)
		}
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "Usage: %s %s %s (see '%s help %s')\n", prog, c.name, c.args, prog, c.name)
		}
		return 1
	}
	return 0
}

// usageError is a runner error that warrants the usage line.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// parseInterspersed lets flags come before, between or after the
// positional arguments; everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func mainUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s <subcommand> [args]\n\n%s full list of subcommands:\n\n", prog, prog)
	for _, c := range commands {
		fmt.Fprintf(w, " %-20s%s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nSee '%s help <subcommand>' for the options of one subcommand.\n", prog)
}

func cmdUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: %s %s %s\n\n%s\n", prog, c.name, c.args, c.help)
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(fs)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nOptions:\n\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// parseDomid accepts a decimal domain id, where no xenstore is read
// (apply --dry-run, --backend-domid); elsewhere the plugin resolves names.
func parseDomid(s string) (uint32, error) {
	if s == "" {
		return 0, fmt.Errorf("empty domain id")
	}
	isNum := true
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			isNum = false
			break
		}
	}
	if !isNum {
		return 0, fmt.Errorf("domain %q: domain names need xenstore, which this does not read; pass a numeric domid", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n >= xenif.DomidFirstReserved {
		return 0, fmt.Errorf("domain id %q out of range (0-%d)", s, xenif.DomidFirstReserved-1)
	}
	return uint32(n), nil
}

// domidFlag is a flag.Value holding a checked domid.
type domidFlag struct{ v uint32 }

func (d *domidFlag) String() string { return strconv.FormatUint(uint64(d.v), 10) }
func (d *domidFlag) Set(s string) error {
	v, err := parseDomid(s)
	if err != nil {
		return err
	}
	d.v = v
	return nil
}

// flavourHelp describes --flavour.
const flavourHelp = "backend flavour `kernel|hctl|userspace`: kernel = Linux xen-scsiback (p-dev naa.<wwn>:<lun>),\n" +
	"hctl = classic xenlinux scsiback (p-dev h:c:t:l),\n" +
	"userspace = govscsi's vscsi-backend (p-dev /dev/..., file:, ram:, block:, sg:; backend type vscsiu)"

// typeFlag is a flag.Value holding a backend type name ("" = from the
// flavour).
type typeFlag struct{ v string }

func (f *typeFlag) String() string { return f.v }
func (f *typeFlag) Set(s string) error {
	if err := cfgparse.ValidBackendType(s); err != nil {
		return err
	}
	f.v = s
	return nil
}

const typeHelp = "write new vhosts under backend type `T` (default: vscsi, or vscsiu for --flavour userspace)"

// backendType is t, or the flavour's default.
func backendType(t *typeFlag, f cfgparse.Flavour) string {
	if t.v != "" {
		return t.v
	}
	return f.BackendType()
}

// flavourFlag is a flag.Value holding a backend flavour.
type flavourFlag struct{ f cfgparse.Flavour }

func (f *flavourFlag) String() string { return f.f.String() }
func (f *flavourFlag) Set(s string) error {
	v, err := cfgparse.ParseFlavour(s)
	if err != nil {
		return err
	}
	f.f = v
	return nil
}

func setupApply(fs *flag.FlagSet) runner {
	f := addTSFlags(fs, true, false)
	return func(e *env, args []string) error {
		if len(args) != 2 {
			return usagef("want <ConfigFile> <Domain>, got %d argument(s)", len(args))
		}
		if !*f.dry {
			return applyLive(e, f, args[0], args[1])
		}
		domid, err := parseDomid(args[1])
		if err != nil {
			return err
		}
		if domid == f.be.v {
			return fmt.Errorf("domain %d cannot be its own vscsi backend (--backend-domid)", domid)
		}
		devs, plan, err := f.configPlan(e, args[0])
		if err != nil {
			return err
		}
		if len(devs) == 0 {
			fmt.Fprintf(e.stderr, "%s apply: %s has no vscsi= entries; nothing to write\n", prog, args[0])
			return nil
		}
		w := plan.Render(cfgparse.Domains{Frontend: domid, Backend: f.be.v, Type: backendType(f.bt, f.fl.f)})
		if *f.asJSON {
			b, err := cfgparse.FormatJSON(w)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(b)
			return err
		}
		_, err = io.WriteString(e.stdout, cfgparse.FormatText(w))
		return err
	}
}

// printWarnings shows warnings (cfgparse.Warning or plugin.Result's
// strings) on stderr, one prefixed line each.
func printWarnings[W any](e *env, warns []W) {
	for _, w := range warns {
		fmt.Fprintf(e.stderr, "%s: %v\n", prog, w)
	}
}
