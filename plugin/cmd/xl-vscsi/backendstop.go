package main

// `xl-vscsi backend-stop`: stop the userspace backend daemon through its
// control socket, as a handover (its guests stay connected for the next
// vscsi-backend) or, with --disconnect, closing every guest's vhost first.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/backend/stats"
)

const backendStopHelp = `Stop the userspace vscsi backend (vscsi-backend) through its control
socket (config stats_socket) and wait until it has exited.

Without --disconnect this is what SIGTERM does (on_stop: handover, the
default): every guest stays connected; the commands in flight finish and
are answered, the rest wait in the rings, and the next vscsi-backend takes
the vhosts over. The guests see a pause; until a backend runs again their
I/O waits (and after their SCSI timeout, 30 s for Linux, their error
handling starts).

--disconnect is the explicit act that takes the disks away: every connected
vhost goes Closing, the guest gets timeouts.shutdown to close its side,
then Closed. The vhosts and their devices stay in xenstore; a guest gets
its disks back only when its frontend connects again (xl-vscsi scsi-attach
of a new vhost, or a re-probe of xen-scsifront). Use it before replacing
the userspace backend for good. Per guest, scsi-detach and destroy-vhost
remove devices or vhosts without stopping the daemon.`

func setupBackendStop(fs *flag.FlagSet) runner {
	sock := fs.String("socket", stats.DefaultSocket, "the backend's control socket `P` (config stats_socket)")
	disconnect := fs.Bool("disconnect", false, "close every guest's vhost before stopping (the guests lose their disks)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up waiting for the daemon to exit after `D`")
	return func(e *env, args []string) error {
		if len(args) != 0 {
			return usagef("backend-stop takes no arguments, got %q", args[0])
		}
		mode := "handover"
		if *disconnect {
			mode = "disconnect"
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		rep, err := stats.Stop(ctx, *sock, mode)
		if err != nil {
			return fmt.Errorf("stopping the backend at %s: %w", *sock, err)
		}
		fmt.Fprintf(e.stderr, "vscsi-backend (pid %d) stopping (%s, %d connected vhosts)...\n", rep.Pid, rep.Mode, rep.Vhosts)
		last := time.Now()
		for !gone(*sock, rep.Pid) {
			if ctx.Err() != nil {
				return fmt.Errorf("vscsi-backend (pid %d) still running after %v", rep.Pid, time.Since(start).Round(time.Millisecond))
			}
			if time.Since(last) > 5*time.Second {
				fmt.Fprintf(e.stderr, "  still stopping after %v\n", time.Since(start).Round(time.Second))
				last = time.Now()
			}
			time.Sleep(50 * time.Millisecond)
		}
		what := "left connected for the next vscsi-backend"
		if rep.Mode == "disconnect" {
			what = "disconnected"
		}
		fmt.Fprintf(e.stdout, "vscsi-backend stopped in %v: %d vhosts %s\n", time.Since(start).Round(time.Millisecond), rep.Vhosts, what)
		return nil
	}
}

// gone: the daemon has exited (its process is gone) or at least closed its
// control socket (it closes it last, after every vhost was handed over or
// disconnected; a daemon in another PID namespace has no visible pid).
func gone(sock string, pid int) bool {
	if pid > 0 {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
	}
	c.Close()
	return false
}
