package main

// The subcommands that talk to xenstore: scsi-attach, scsi-detach,
// scsi-list (and their vscsi-* aliases), apply (without --dry-run),
// create, destroy-vhost and cleanup. They are thin: package plugin does
// the work. The xenstore connection is Debian's libxenstore (libxlgo/xs),
// which honours XENSTORED_PATH (the tests point it at an xsfake server).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/plugin"
)

// openStore connects to xenstore; a variable so that nothing else needs
// to change for another transport.
var openStore = func() (xenif.Store, error) {
	h, err := xs.Open(0)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to xenstore (is xenstored running? XENSTORED_PATH=%q): %w", os.Getenv("XENSTORED_PATH"), err)
	}
	return h, nil
}

// tsFlags are the options every xenstore command takes.
type tsFlags struct {
	be      *domidFlag
	fl      *flavourFlag
	bt      *typeFlag
	timeout *time.Duration
	dry     *bool
	asJSON  *bool
	sysfs   *string
	cfgfs   *string
	hotplug *string
}

// addTSFlags registers the options of the xenstore commands: the backend
// ones always, --dry-run and the resolver ones (addResolveFlags) for
// commands that write, --json for those that write or print data.
func addTSFlags(fs *flag.FlagSet, writes, data bool) *tsFlags {
	f := &tsFlags{be: &domidFlag{}, fl: &flavourFlag{f: cfgparse.FlavourKernel}, bt: &typeFlag{}}
	fs.Var(f.be, "backend-domid", "the vscsi backend runs in domain `N`")
	fs.Var(f.fl, "flavour", flavourHelp)
	fs.Var(f.bt, "backend-type", typeHelp)
	f.timeout = fs.Duration("timeout", plugin.DefaultInitTimeout, "bound each wait for the peers to `D` (as libxl: 10s)")
	if writes {
		f.dry = fs.Bool("dry-run", false, "print the xenstore writes (and removals) instead of making them")
		f.addResolveFlags(fs)
	}
	if data || writes {
		f.asJSON = fs.Bool("json", false, "print the result as JSON")
	}
	return f
}

// addResolveFlags registers the options that turn /dev pdevs into LUNs
// and name the hotplug script: for the writing commands and for create,
// whose --dry-run means something else.
func (f *tsFlags) addResolveFlags(fs *flag.FlagSet) {
	f.sysfs = fs.String("sysfs-root", "/sys", "resolve /dev pdevs through the sysfs at `P`")
	f.cfgfs = fs.String("configfs-root", "/sys/kernel/config", "find LIO xen-pvscsi ports in the configfs at `P`")
	f.hotplug = fs.String("hotplug-script", "", "run `script` add|remove for each new or destroyed vhost (libxl's convention)")
}

// options are the plugin.Options the flags ask for.
func (f *tsFlags) options(e *env) plugin.Options {
	o := plugin.Options{
		BackendDomid:   f.be.v,
		Flavour:        f.fl.f,
		BackendType:    backendType(f.bt, f.fl.f),
		InitTimeout:    *f.timeout,
		DestroyTimeout: *f.timeout,
		Stat:           e.stat,
		HotplugLog:     e.stderr,
	}
	if f.dry != nil {
		o.DryRun = *f.dry
	}
	if f.sysfs != nil {
		o.SysfsRoot, o.ConfigfsRoot, o.HotplugScript = *f.sysfs, *f.cfgfs, *f.hotplug
	}
	return o
}

// configPlan reads the vscsi= entries of the config file cfg, resolves
// them for the flags' flavour and groups them into vhosts, showing the
// warnings on the way: what apply --dry-run prints and what create checks
// before it creates a domain. No devices: the config has no vscsi= entries.
func (f *tsFlags) configPlan(e *env, cfg string) ([]cfgparse.Device, cfgparse.Plan, error) {
	entries, warns, err := cfgparse.ConfigSpecs(cfg)
	printWarnings(e, warns)
	if err != nil {
		return nil, cfgparse.Plan{}, err
	}
	r := &cfgparse.Resolver{SysfsRoot: *f.sysfs, ConfigfsRoot: *f.cfgfs, Stat: e.stat}
	devs, warns, err := r.Devices(entries, f.fl.f)
	printWarnings(e, warns)
	if err != nil {
		return nil, cfgparse.Plan{}, err
	}
	plan, err := cfgparse.Group(devs, nil, 0)
	return devs, plan, err
}

// toolstack opens xenstore and a plugin.Toolstack; close releases both.
func (f *tsFlags) toolstack(e *env) (*plugin.Toolstack, func(), error) {
	st, err := openStore()
	if err != nil {
		return nil, nil, err
	}
	ts := plugin.New(st, f.options(e))
	return ts, func() { ts.Close(); st.Close() }, nil
}

// change runs a writing command's toolstack operation and reports its
// Result; a failure still shows the operation's warnings (they often
// explain it).
func (f *tsFlags) change(e *env, op func(*plugin.Toolstack) (plugin.Result, error)) error {
	ts, done, err := f.toolstack(e)
	if err != nil {
		return err
	}
	defer done()
	res, err := op(ts)
	if err != nil {
		printWarnings(e, res.Warnings)
		return err
	}
	return f.report(e, res)
}

// report prints a writing command's outcome: with --dry-run the writes
// (text: `path = "value"` lines then `rm path` lines; JSON: the apply
// --dry-run array, removals as kind "rm"); otherwise nothing, or the
// Result with --json. Warnings go to stderr.
func (f *tsFlags) report(e *env, res plugin.Result) error {
	printWarnings(e, res.Warnings)
	if f.dry != nil && *f.dry {
		if *f.asJSON {
			b, err := cfgparse.FormatJSON(res.Writes)
			if err != nil {
				return err
			}
			if len(res.Removes) > 0 {
				var list []cfgparse.JSONWrite
				if err := json.Unmarshal(b, &list); err != nil {
					return err
				}
				for _, p := range res.Removes {
					list = append(list, cfgparse.JSONWrite{Path: p, Kind: "rm"})
				}
				if b, err = json.MarshalIndent(list, "", "  "); err != nil {
					return err
				}
				b = append(b, '\n')
			}
			_, err = e.stdout.Write(b)
			return err
		}
		io.WriteString(e.stdout, cfgparse.FormatText(res.Writes))
		for _, p := range res.Removes {
			fmt.Fprintf(e.stdout, "rm %s\n", p)
		}
		return nil
	}
	if f.asJSON != nil && *f.asJSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(append(b, '\n'))
		return err
	}
	if res.Pending {
		fmt.Fprintf(e.stderr, "%s: the vhost has no connected frontend yet; the device connects when the guest's xen-scsifront does\n", prog)
	}
	return nil
}

func setupAttach(fs *flag.FlagSet) runner {
	f := addTSFlags(fs, true, false)
	return func(e *env, args []string) error {
		if len(args) != 3 && len(args) != 4 {
			return usagef("want <Domain> <PhysDevice> <VirtDevice>[,feature-host] [feature-host], got %d argument(s)", len(args))
		}
		vdev := args[2]
		if len(args) == 4 {
			vdev += "," + args[3] // SUSE's xl: a separate 4th argument is an option
		}
		return f.change(e, func(ts *plugin.Toolstack) (plugin.Result, error) {
			return ts.Attach(context.Background(), args[0], args[1], vdev)
		})
	}
}

func setupDetach(fs *flag.FlagSet) runner {
	f := addTSFlags(fs, true, false)
	return func(e *env, args []string) error {
		if len(args) != 2 {
			return usagef("want <Domain> <VirtDevice>, got %d argument(s)", len(args))
		}
		return f.change(e, func(ts *plugin.Toolstack) (plugin.Result, error) {
			return ts.Detach(context.Background(), args[0], args[1])
		})
	}
}

func setupList(fs *flag.FlagSet) runner {
	f := addTSFlags(fs, false, true)
	return func(e *env, args []string) error {
		if len(args) == 0 {
			return usagef("want at least one <Domain>")
		}
		ts, done, err := f.toolstack(e)
		if err != nil {
			return err
		}
		defer done()
		var all []plugin.VHostStatus
		for _, d := range args {
			id, err := ts.DomainID(d)
			if err != nil {
				return err
			}
			vs, err := ts.List(id)
			if err != nil {
				return err
			}
			all = append(all, vs...)
		}
		if *f.asJSON {
			b, err := plugin.FormatListJSON(all)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(b)
			return err
		}
		return plugin.FormatListText(e.stdout, all)
	}
}

// applyLive is apply without --dry-run (called by setupApply).
func applyLive(e *env, f *tsFlags, cfg, domain string) error {
	return f.change(e, func(ts *plugin.Toolstack) (plugin.Result, error) {
		res, err := ts.Apply(context.Background(), domain, cfg)
		if err == nil && len(res.Added) == 0 && len(res.Warnings) == 0 {
			fmt.Fprintf(e.stderr, "%s apply: %s has no vscsi= entries; nothing to write\n", prog, cfg)
		}
		return res, err
	})
}

func setupDestroyVHost(fs *flag.FlagSet) runner {
	f := addTSFlags(fs, true, false)
	return func(e *env, args []string) error {
		if len(args) != 2 {
			return usagef("want <Domain> <Vhost>, got %d argument(s)", len(args))
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 {
			return usagef("vhost %q: want the vhost's devid (a number, see scsi-list)", args[1])
		}
		return f.change(e, func(ts *plugin.Toolstack) (plugin.Result, error) {
			return ts.DestroyVHost(context.Background(), args[0], n)
		})
	}
}

func setupCleanup(fs *flag.FlagSet) runner {
	f := addTSFlags(fs, true, false)
	return func(e *env, args []string) error {
		if len(args) != 0 {
			return usagef("takes no arguments, got %d", len(args))
		}
		ts, done, err := f.toolstack(e)
		if err != nil {
			return err
		}
		defer done()
		ids, err := ts.Cleanup()
		if err != nil {
			return err
		}
		if *f.asJSON {
			if ids == nil {
				ids = []uint32{}
			}
			b, _ := json.Marshal(map[string]any{"cleaned": ids, "dry_run": *f.dry})
			_, err := e.stdout.Write(append(b, '\n'))
			return err
		}
		verb := "removed"
		if *f.dry {
			verb = "would remove"
		}
		for _, id := range ids {
			fmt.Fprintf(e.stdout, "%s the vscsi nodes of vanished domain %d\n", verb, id)
		}
		return nil
	}
}

// xlCmd is the xl binary ($XL, else xl from PATH) with args.
func xlCmd(args ...string) *exec.Cmd {
	bin := os.Getenv("XL")
	if bin == "" {
		bin = "xl"
	}
	return exec.Command(bin, args...)
}

// xlCommand runs xl with args, output to e's stderr.
func xlCommand(e *env, args ...string) error {
	cmd := xlCmd(args...)
	cmd.Stdout, cmd.Stderr = e.stderr, e.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	return nil
}

func liveDomains(s xenif.Store) (map[string]bool, error) {
	l, err := s.Directory(xenif.NoTx, "/local/domain")
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, d := range l {
		m[d] = true
	}
	return m, nil
}

func setupCreate(fs *flag.FlagSet) runner {
	f := addTSFlags(fs, false, false)
	f.addResolveFlags(fs)
	dry := fs.Bool("dry-run", false, "check the config's vscsi= entries and print the commands, run nothing")
	return func(e *env, args []string) error {
		if len(args) < 1 {
			return usagef("want <ConfigFile> [xl create options]")
		}
		cfg := args[0]
		// Check the vscsi entries before creating anything.
		devs, _, err := f.configPlan(e, cfg)
		if err != nil {
			return err
		}
		xlArgs, assigns := []string{"create", "-p"}, []string(nil)
		for _, a := range args[1:] {
			if strings.HasPrefix(a, "-") {
				xlArgs = append(xlArgs, a)
			} else {
				assigns = append(assigns, a)
			}
		}
		xlArgs = append(append(xlArgs, cfg), assigns...)
		if *dry {
			fmt.Fprintf(e.stdout, "xl %s\n", strings.Join(xlArgs, " "))
			if len(devs) > 0 {
				fmt.Fprintf(e.stdout, "%s apply %s <new domid>   (%d device(s))\n", prog, cfg, len(devs))
			}
			fmt.Fprintf(e.stdout, "xl unpause <new domid>\n")
			return nil
		}
		st, err := openStore()
		if err != nil {
			return err
		}
		defer st.Close()
		domid, err := xlNewDomain(st, func() error { return xlCommand(e, xlArgs...) })
		if err != nil {
			return err
		}
		if len(devs) > 0 {
			o := f.options(e)
			// The guest is paused: its frontend cannot connect before
			// unpause, so wait for the backends now and for the
			// frontends after unpausing (as libxl does for disks).
			o.DeferConnect = true
			ts := plugin.New(st, o)
			defer ts.Close()
			destroy := func(err error) error {
				if derr := xlCommand(e, "destroy", domid); derr != nil {
					return fmt.Errorf("%w; destroying domain %s failed too: %v", err, domid, derr)
				}
				// xl knows no vscsi devices: remove the trees it left (P26).
				if _, cerr := ts.Cleanup(); cerr != nil {
					return fmt.Errorf("%w; domain %s destroyed, but removing its vscsi nodes failed: %v", err, domid, cerr)
				}
				return fmt.Errorf("%w; domain %s destroyed", err, domid)
			}
			res, err := ts.Apply(context.Background(), domid, cfg)
			printWarnings(e, res.Warnings)
			if err != nil {
				return destroy(err)
			}
			if err := xlCommand(e, "unpause", domid); err != nil {
				return destroy(err)
			}
			if err := ts.WaitConnected(context.Background(), res.Domid, res.Waits); err != nil {
				return destroy(err)
			}
			return nil
		}
		return xlCommand(e, "unpause", domid)
	}
}

const attachHelp = `Attach <PhysDevice> to <Domain> (a name or a domid) as <VirtDevice>
(h:c:t:l; the h selects the vhost). PhysDevice is a /dev path, h:c:t:l or
naa.<wwn>:<lun>, resolved for --flavour; with --flavour userspace it is
what govscsi's vscsi-backend opens: /dev/..., block:/dev/X, sg:/dev/X,
file:/abs/path or ram:<size>, written as given, and the options ro,
direct and raw may follow VirtDevice (docs/vscsi-syntax.md). A new vhost is
created when the domain has none for that host number (under backend type
vscsi, or vscsiu for --flavour userspace; see --backend-type), else the
device is hot-added; a vhost served by the other backend type is refused.
The command waits until the backend and the guest both report the device
connected (state 4) and, if either refuses it (state 6) or the wait times
out, removes what it wrote and fails naming the device.
The option feature-host may follow VirtDevice after a comma or come as a
fourth argument (SUSE's xl accepts both).`

const detachHelp = `Detach the device <VirtDevice> (the full h:c:t:l given at attach) from
<Domain>. The vhost stays, even without devices; remove it with
destroy-vhost.`

const listHelp = `List the vhosts and devices of each <Domain>: one row per device with the
vhost's backend and frontend states and the device's p-dev, v-dev and
backend and frontend states (xenbus numbers: 1 initialising, 2 initwait,
3 initialised, 4 connected, 5 closing, 6 closed, 7/8 reconfiguring/ed,
0 missing). --json gives the same as an array of vhosts.`

const createHelp = `Run 'xl create -p <ConfigFile> [xl create options]' ($XL or xl from PATH),
attach the config's vscsi= devices to the new (paused) domain as apply
does, then 'xl unpause' it. If attaching fails the half-made domain is
destroyed with 'xl destroy'. Put xl's own options after '--'.`

const destroyHelp = `Remove vhost <Vhost> (its devid, as scsi-list shows) and every device on it
from <Domain>: the backend is asked to close, and if it does not within
--timeout the frontend tree is removed first (libxl's forced path); then
both trees are deleted.`

const cleanupHelp = `Remove the vscsi backend trees (and the toolstack's /libxl/<domid>/vscsi)
of domains that no longer exist: 'xl destroy' knows nothing about vscsi
and leaves them behind.`

// globalFlags are the options xl-vscsi also accepts before the subcommand
// name (`xl-vscsi --timeout 5s scsi-attach ...`), as xl takes -v there.
var globalFlags = map[string]bool{"backend-domid": true, "flavour": true, "backend-type": true, "timeout": true}

// hoistGlobalFlags moves global options given before the subcommand to
// just after it, where the subcommand's flag set parses them.
func hoistGlobalFlags(args []string) []string {
	var pre []string
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" {
		name, _, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !globalFlags[name] {
			return args // not ours (e.g. -h): leave everything as it was
		}
		pre = append(pre, args[i])
		i++
		if !hasVal && i < len(args) {
			pre = append(pre, args[i])
			i++
		}
	}
	if len(pre) == 0 || i >= len(args) {
		return args
	}
	out := append([]string{args[i]}, pre...)
	return append(out, args[i+1:]...)
}
