package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// HotplugEnv is the environment libxl gives a block hotplug script
// (protocol.md §4.2), for the vscsi vhost of a domain: XENBUS_PATH is
// relative to the backend domain's home. It is HotplugEnvType for the
// kernel's backend type "vscsi".
func HotplugEnv(script string, domid uint32, vhost int) []string {
	return HotplugEnvType(script, cfgparse.TypeKernel, domid, vhost)
}

// HotplugEnvType is HotplugEnv for a vhost under backend type typ
// (XENBUS_TYPE=typ, XENBUS_PATH=backend/<typ>/<domid>/<vhost>).
func HotplugEnvType(script, typ string, domid uint32, vhost int) []string {
	return []string{
		"script=" + script,
		"XENBUS_TYPE=" + typ,
		fmt.Sprintf("XENBUS_PATH=backend/%s/%d/%d", typ, domid, vhost),
		"XENBUS_BASE_PATH=backend",
	}
}

// runHotplug runs Options.HotplugScript with argument action ("add" or
// "remove"), stdin /dev/null, stdout and stderr to Options.HotplugLog,
// bounded by Options.HotplugTimeout. A non-zero exit is an error that
// carries the script's hotplug-error node if it wrote one.
func (t *Toolstack) runHotplug(ctx context.Context, d cfgparse.Domains, vhost int, action string) error {
	domid := d.Frontend
	script := t.opt.HotplugScript
	if script == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.opt.HotplugTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, action)
	cmd.Env = append(os.Environ(), HotplugEnvType(script, d.BackendType(), domid, vhost)...)
	cmd.Stdout = t.opt.HotplugLog
	cmd.Stderr = t.opt.HotplugLog
	// A script that leaves a child holding its output open must not hang us.
	cmd.WaitDelay = 2 * time.Second
	t.opt.Logger.Debug("running hotplug script", "script", script, "action", action, "domid", domid, "vhost", vhost)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("killed after %v: %w", t.opt.HotplugTimeout, ErrTimeout)
	}
	be := cfgparse.BackendPath(d, vhost)
	if he, rerr := readOpt(t.s, xenif.NoTx, be+"/hotplug-error"); rerr == nil && he != "" {
		err = fmt.Errorf("%w: %s", err, he)
	}
	return fmt.Errorf("hotplug script %s %s for vhost %d of domain %d failed: %w", script, action, vhost, domid, err)
}
