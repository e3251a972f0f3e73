// Command vscsi-hotplug is govscsi's vscsi hotplug script body, run by the
// wrapper /etc/xen/scripts/vscsi-govscsi (hotplug/scripts) for xl-vscsi
// (libxl's block-script convention) and for udev's xen-backend:vscsi
// events:
//
//	vscsi-hotplug add|remove [NAME=value...]
//
// with XENBUS_PATH=backend/vscsi/<domid>/<devid> (XENBUS_TYPE,
// XENBUS_BASE_PATH, udev's ACTION and UDEV_CALL) in the environment.
// Exit status: 0 done (or skipped by the udev guard), 1 failed (add wrote
// hotplug-error and hotplug-status=error if the backend path exists).
// docs/hotplug.md has the contract.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/govscsi/govscsi/hotplug"
	"github.com/govscsi/govscsi/internal/version"
	"github.com/govscsi/govscsi/libxlgo/xs"
)

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Printf("vscsi-hotplug %s\n", version.String())
		return 0
	}
	// NAME=value arguments set variables for everything below (Xen's
	// findCommand exports them), so they can override GOVSCSI_* too.
	for _, a := range os.Args[1:] {
		if k, v, ok := strings.Cut(a, "="); ok && validName(k) {
			os.Setenv(k, v)
		}
	}
	inv, err := hotplug.ParseInvocation(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vscsi-hotplug: %v\n", err)
		return 1
	}
	cfg, err := hotplug.LoadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vscsi-hotplug: %v\n", err)
		return 1
	}
	lg := cfg.Logger(os.Stderr)
	store, err := xs.Open(0)
	if err != nil {
		lg.Error("cannot connect to xenstore", "action", inv.Action, "XENBUS_PATH", inv.XenbusPath, "error", err)
		return 1
	}
	defer store.Close()
	// libxl kills the script after its 40 s timeout; stop cleanly on a
	// TERM before that so the rollback of a half-done add still runs.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := cfg.Runner(store, lg).Run(ctx, inv); err != nil {
		return 1
	}
	return 0
}

func validName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
