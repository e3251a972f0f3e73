package main

// restore, migrate and migrate-receive: xl's commands that bring a domain
// back under a new domid, wrapped as create wraps xl create, for hosts
// without vscsi-autoattach. Each runs xl with -p, attaches the domain's
// vscsi devices while it is still paused (its frontend resumes and reads
// device/vscsi/<n>/backend the moment it runs), then unpauses it unless
// the user asked for -p, and waits for the guest to reconnect. The vscsi=
// list comes from the domain's xl config (an image only carries libxl's
// JSON, which has none: savefile.go), given or found by name and uuid in
// the config directories as vscsi-autoattach finds it.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/autoattach"
)

// lifeFlags are the options of restore, migrate and migrate-receive on
// top of the toolstack's.
type lifeFlags struct {
	*tsFlags
	dirs     dirsFlag
	reattach *time.Duration
}

// dirsFlag is a repeatable --config-dir (default: vscsi-autoattach's).
type dirsFlag []string

func (d *dirsFlag) String() string     { return strings.Join(*d, ",") }
func (d *dirsFlag) Set(s string) error { *d = append(*d, s); return nil }

func (l *lifeFlags) configDirs() []string {
	if len(l.dirs) == 0 {
		return autoattach.DefaultConfigDirs
	}
	return l.dirs
}

func addLifeFlags(fs *flag.FlagSet) *lifeFlags {
	l := &lifeFlags{tsFlags: addTSFlags(fs, false, false)}
	l.addResolveFlags(fs)
	fs.Var(&l.dirs, "config-dir", "find the domain's xl config by name in `dir` (repeatable; default /etc/xen, /etc/xen/auto)")
	l.reattach = fs.Duration("reattach-timeout", 2*time.Minute, "after unpausing, wait up to `D` for the guest to reconnect its vscsi devices")
	return l
}

// findConfig is the xl config of the domain called name (uuid may be ""):
// "" if none of the config directories has one.
func (l *lifeFlags) findConfig(e *env, name, uuid string) (string, error) {
	p, err := autoattach.FindConfig(l.configDirs(), name, uuid)
	if err != nil {
		return "", err
	}
	if p == "" {
		fmt.Fprintf(e.stderr, "%s: no xl config in %s names domain %q: it gets no vscsi devices\n", prog, strings.Join(l.configDirs(), ", "), name)
	}
	return p, nil
}

// xlNewDomain runs an xl command that makes one domain (create, restore,
// migrate-receive; all with -p) and returns the new domain's id: the one
// domain in /local/domain afterwards that was not there before.
func xlNewDomain(st xenif.Store, run func() error) (string, error) {
	before, err := liveDomains(st)
	if err != nil {
		return "", err
	}
	if err := run(); err != nil {
		return "", err
	}
	after, err := liveDomains(st)
	if err != nil {
		return "", err
	}
	var fresh []string
	for d := range after {
		if !before[d] {
			fresh = append(fresh, d)
		}
	}
	sort.Strings(fresh)
	if len(fresh) != 1 {
		return "", fmt.Errorf("cannot tell which domain xl made: new domains %v (did another one start meanwhile?); it stays paused", fresh)
	}
	return fresh[0], nil
}

// attachPaused attaches the vscsi devices of cfg to domid, which xl left
// paused, unpauses it unless keepPaused, and waits for the guest to
// reconnect. A failed attach leaves the domain paused (its state is the
// guest's memory: destroying it would lose what the save kept) and says
// how to go on.
func (l *lifeFlags) attachPaused(e *env, st xenif.Store, domid, cfg string, keepPaused bool, what string) error {
	unpause := func() error {
		if keepPaused {
			return nil
		}
		return xlCommand(e, "unpause", domid)
	}
	if cfg == "" {
		return unpause()
	}
	o := l.options(e)
	ts := plugin.New(st, o)
	defer ts.Close()
	t0 := time.Now()
	res, err := ts.ApplyBeforeRun(context.Background(), domid, cfg)
	printWarnings(e, res.Warnings)
	if err != nil {
		return fmt.Errorf("domain %s %s but left paused: attaching the vscsi devices of %s failed: %w\n"+
			"fix the cause, then `%s apply %s %s` and `xl unpause %s` (or `xl destroy %s`)", domid, what, cfg, err, prog, cfg, domid, domid, domid)
	}
	fmt.Fprintf(e.stderr, "%s: domain %s: %d vscsi device(s) of %s ready before it runs (%s)\n", prog, domid, len(res.Added)+len(res.Already), cfg, time.Since(t0).Round(time.Millisecond))
	if err := unpause(); err != nil {
		return err
	}
	if keepPaused || len(res.Waits) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), *l.reattach)
	defer cancel()
	t1 := time.Now()
	id, _ := strconv.ParseUint(domid, 10, 32)
	if err := ts.WaitConnected(ctx, uint32(id), res.Waits); err != nil {
		return fmt.Errorf("domain %s runs, but its guest has not reconnected its vscsi devices (they stay): %w", domid, err)
	}
	fmt.Fprintf(e.stderr, "%s: domain %s: the guest reconnected its vscsi devices %s after unpause\n", prog, domid, time.Since(t1).Round(time.Millisecond))
	return nil
}

// xlOpts splits xl arguments into options and positional arguments;
// withValue lists the options that take a value.
func xlOpts(args []string, withValue string) (opts, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return opts, append(pos, args[i+1:]...)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			opts = append(opts, a)
			if len(a) == 2 && strings.ContainsRune(withValue, rune(a[1])) && i+1 < len(args) {
				i++
				opts = append(opts, args[i])
			}
		default:
			pos = append(pos, a)
		}
	}
	return opts, pos
}

func has(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

func setupRestore(fs *flag.FlagSet) runner {
	l := addLifeFlags(fs)
	return func(e *env, args []string) error {
		opts, pos := xlOpts(args, "")
		if len(pos) != 1 && len(pos) != 2 {
			return usagef("want [xl restore options] [<ConfigFile>] <CheckpointFile>, got %d argument(s)", len(pos))
		}
		if has(opts, "-c") {
			return usagef("-c (console) is not supported: the domain is attached before it runs; use `xl console` afterwards")
		}
		ckpt, cfg := pos[len(pos)-1], ""
		if len(pos) == 2 {
			cfg = pos[0]
		} else {
			id, err := readSaveIdentity(ckpt)
			if err != nil {
				return err
			}
			if cfg, err = l.findConfig(e, id.Name, id.UUID); err != nil {
				return err
			}
		}
		if cfg != "" {
			if _, _, err := l.configPlan(e, cfg); err != nil {
				return err // nothing restored yet
			}
		}
		st, err := openStore()
		if err != nil {
			return err
		}
		defer st.Close()
		domid, err := xlNewDomain(st, func() error {
			return xlCommand(e, append(append([]string{"restore", "-p"}, without(opts, "-p")...), pos...)...)
		})
		if err != nil {
			return err
		}
		return l.attachPaused(e, st, domid, cfg, has(opts, "-p"), "restored")
	}
}

func without(opts []string, o string) []string {
	var out []string
	for _, x := range opts {
		if x != o {
			out = append(out, x)
		}
	}
	return out
}

// shellQuote quotes s for sh -c (xl runs the migration command that way,
// and ssh hands it to the remote shell).
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func setupMigrate(fs *flag.FlagSet) runner {
	l := addLifeFlags(fs)
	return func(e *env, args []string) error {
		opts, pos := xlOpts(args, "sC")
		if len(pos) != 2 {
			return usagef("want [xl migrate options] <Domain> <Host>, got %d argument(s)", len(pos))
		}
		domain, host := pos[0], pos[1]
		ssh, haveSSH := "ssh", false
		var pass, recv []string
		for i := 0; i < len(opts); i++ {
			switch o := opts[i]; o {
			case "-s":
				if i+1 < len(opts) {
					ssh, haveSSH = opts[i+1], true
					i++
				}
			case "-C":
				pass = append(pass, o)
				if i+1 < len(opts) {
					pass = append(pass, opts[i+1])
					i++
				}
			case "-e":
				pass, recv = append(pass, o), append(recv, "-e")
			case "--debug":
				pass, recv = append(pass, o), append(recv, "-d")
			case "-p":
				pass, recv = append(pass, o), append(recv, "-p")
			default:
				pass = append(pass, o)
			}
		}
		rune := host
		if !(haveSSH && ssh == "") {
			// As xl builds its rune, with xl-vscsi migrate-receive in
			// place of xl migrate-receive and this command's own options
			// passed on.
			parts := []string{"exec", ssh, shellQuote(host), prog, "migrate-receive"}
			fs.Visit(func(f *flag.Flag) {
				if f.Name == "config-dir" {
					for _, d := range l.dirs {
						parts = append(parts, "--config-dir="+shellQuote(d))
					}
					return
				}
				parts = append(parts, "--"+f.Name+"="+shellQuote(f.Value.String()))
			})
			parts = append(parts, "--")
			parts = append(parts, recv...)
			rune = strings.Join(parts, " ")
		}
		// -s '': xl runs rune itself (sh -c), as it does for a host given
		// with -s '' (then the host argument must run xl-vscsi migrate-receive).
		xlArgs := append(append([]string{"migrate", "-s", ""}, pass...), domain, rune)
		return xlCommand(e, xlArgs...)
	}
}

// migrateStream is the migration stream a receiver passes to xl: its own
// stdin and stdout (a variable for tests).
var migrateStream = defaultMigrateStream

func defaultMigrateStream() (io.Reader, io.Writer) { return os.Stdin, os.Stdout }

func setupMigrateReceive(fs *flag.FlagSet) runner {
	l := addLifeFlags(fs)
	return func(e *env, args []string) error {
		opts, pos := xlOpts(args, "")
		if len(pos) != 0 {
			return usagef("want [xl migrate-receive options], got %d argument(s)", len(pos))
		}
		// Everything of ours goes to stderr: stdout is the stream back to
		// the sender.
		st, err := openStore()
		if err != nil {
			return err
		}
		defer st.Close()
		domid, err := xlNewDomain(st, func() error {
			in, out := migrateStream()
			cmd := xlCmd(append([]string{"migrate-receive", "-p"}, without(opts, "-p")...)...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, e.stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		home := "/local/domain/" + domid
		name, err := st.Read(xenif.NoTx, home+"/name")
		if err != nil {
			return fmt.Errorf("domain %s: reading its name: %w; it stays paused", domid, err)
		}
		uuid := ""
		if vm, err := st.Read(xenif.NoTx, home+"/vm"); err == nil {
			uuid = vm[strings.LastIndexByte(vm, '/')+1:]
		}
		cfg, err := l.findConfig(e, name, uuid)
		if err != nil {
			return fmt.Errorf("domain %s (%s) received but left paused: %w", domid, name, err)
		}
		return l.attachPaused(e, st, domid, cfg, has(opts, "-p"), "received")
	}
}

const restoreHelp = `Run 'xl restore -p [xl restore options] [<ConfigFile>] <CheckpointFile>'
($XL or xl from PATH), attach the domain's vscsi= devices while it is still
paused, then 'xl unpause' it (not with -p) and wait for the guest to
reconnect them (--reattach-timeout). A resumed guest reads its vscsi
devices the moment it runs, so they must be there first; vscsi-autoattach
does the same for plain 'xl restore'. The vscsi= list comes from
<ConfigFile>, else from the xl config in the --config-dir directories
whose name= (and uuid=) match the image's domain (xl stores no vscsi= in
images). If attaching fails the domain stays paused: nothing of the
guest's state is lost. Put xl's own options after '--'.`

const migrateHelp = `Run 'xl migrate [xl migrate options] <Domain> <Host>' with the receiving
side run as 'xl-vscsi migrate-receive' (over ssh, or the -s command, as
xl does), passing this command's options on. The receiver attaches the
domain's vscsi= devices before it runs. With -s '' the <Host> argument
is the receive command itself, as with xl (for a local migration:
-s '' <Domain> 'xl-vscsi migrate-receive'). Put xl's own options after '--'.`

const migrateReceiveHelp = `The receiving end of 'xl-vscsi migrate' (run by it, over ssh): 'xl
migrate-receive -p' on this command's stdin and stdout, then, once the
domain has arrived and been renamed, its vscsi= devices are attached while
it is paused (the xl config found by name and uuid in --config-dir), and
it is unpaused unless -p was given. Logs go to stderr only: stdout is the
migration stream.`
