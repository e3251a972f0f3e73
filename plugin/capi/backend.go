package main

// The userspace vscsi backend inside libgovscsi.so (vscsi_backend_*): a C
// toolstack can serve vhosts from its own process instead of running the
// vscsi-backend daemon. Each started backend is a handle in the same table
// as the toolstack handles (so vscsi_errmsg and vscsi_open_handles cover
// it); it owns one libxenstore connection and the Xen devices that
// xenDeps opens (xen_real.go: /dev/xen/gntdev and /dev/xen/evtchn; the
// test-only build tag govscsi_fakexen swaps in libxlgo/xenfake, see
// xen_fake.go). Nothing runs before vscsi_backend_start; after
// vscsi_backend_stop returns 0, nothing of that backend is left in the
// process. vscsi_backend_stop hands the guests over (on_stop, default
// "handover": they stay connected for the next backend, in this process or
// another); vscsi_backend_stop_disconnect closes every guest's vhost first.

/*
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/server"
	"github.com/govscsi/govscsi/backend/xenbus"
)

// backendRun is one started backend.
type backendRun struct {
	srv     *server.Server
	cancel  context.CancelFunc
	done    chan error // Run's result, once
	closers []io.Closer
	runErr  error // Run's result once received
	ended   bool
}

// startupGrace is how long vscsi_backend_start waits for Run to fail
// straight away (stats socket in use, xenstore watch refused), so such
// errors come back from start rather than from stop.
const startupGrace = 100 * time.Millisecond

// defaultStopTimeout bounds vscsi_backend_stop with timeout_ms <= 0.
const defaultStopTimeout = 30 * time.Second

//export vscsi_backend_start
func vscsi_backend_start(configYAML *C.char, out *C.int) (rc C.int) {
	defer recoverExport(0, &rc, "vscsi_backend_start")
	fail := func(err error) C.int {
		tableMu.Lock()
		openErr = err.Error()
		tableMu.Unlock()
		return errnoOf(err)
	}
	if out == nil {
		return fail(invalidArg("vscsi_backend_start: handle pointer is NULL"))
	}
	text, _ := goStr(configYAML)
	cfg, err := server.ParseConfig([]byte(text))
	if err != nil {
		return fail(invalidArg(err.Error()))
	}
	log := withSink(hclog.New(&hclog.LoggerOptions{Name: "govscsi-backend", Level: hclog.LevelFromString(cfg.LogLevel),
		Output: os.Stderr, JSONFormat: cfg.LogJSON}), "govscsi-backend")
	deps, closers, err := xenDeps()
	if err != nil {
		return fail(err)
	}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i].Close()
		}
	}
	deps.Logger = log
	srv, err := server.New(cfg, deps)
	if err != nil {
		closeAll()
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &backendRun{srv: srv, cancel: cancel, done: make(chan error, 1), closers: closers}
	go func() { run.done <- srv.Run(ctx) }()
	select {
	case err := <-run.done:
		cancel()
		closeAll()
		if err == nil {
			err = errors.New("backend stopped at once")
		}
		return fail(fmt.Errorf("vscsi_backend_start: %w", err))
	case <-time.After(startupGrace):
	}
	tableMu.Lock()
	if table == nil {
		table = map[C.int]*handle{}
	}
	id := nextID
	nextID++
	table[id] = &handle{be: run}
	openErr = ""
	tableMu.Unlock()
	*out = id
	return 0
}

// callBackend runs fn for a backend handle with its lock held and records
// its error.
func callBackend(h C.int, fn func(hd *handle) error) C.int {
	hd := lookup(h)
	if hd == nil {
		return -C.int(syscall.EBADF)
	}
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.be == nil {
		hd.lastErr = "not a backend handle (from vscsi_open: use vscsi_close)"
		return -C.int(syscall.EBADF)
	}
	err := fn(hd)
	if err != nil {
		hd.lastErr = err.Error()
	} else {
		hd.lastErr = ""
	}
	return errnoOf(err)
}

// wait receives Run's result, waiting at most d (0: just look).
func (b *backendRun) wait(d time.Duration) bool {
	if b.ended {
		return true
	}
	if d <= 0 {
		select {
		case err := <-b.done:
			b.runErr, b.ended = err, true
		default:
		}
		return b.ended
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-b.done:
		b.runErr, b.ended = err, true
	case <-timer.C:
	}
	return b.ended
}

//export vscsi_backend_stop
func vscsi_backend_stop(h C.int, timeoutMS C.int) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_backend_stop")
	return backendStop(h, timeoutMS, false)
}

//export vscsi_backend_stop_disconnect
func vscsi_backend_stop_disconnect(h C.int, timeoutMS C.int) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_backend_stop_disconnect")
	return backendStop(h, timeoutMS, true)
}

// backendStop stops a backend as configured (on_stop, default handover:
// its guests stay connected for the next backend), or with disconnect
// every guest's vhost closed first.
func backendStop(h C.int, timeoutMS C.int, disconnect bool) C.int {
	rc := callBackend(h, func(hd *handle) error {
		b := hd.be
		if disconnect {
			b.srv.Stop(xenbus.StopDisconnect)
		}
		b.cancel()
		d := time.Duration(timeoutMS) * time.Millisecond
		if timeoutMS <= 0 {
			d = defaultStopTimeout
		}
		if !b.wait(d) {
			return fmt.Errorf("vscsi_backend_stop: the backend did not stop within %v (its guests have not closed their vhosts; call again to keep waiting): %w", d, syscall.ETIMEDOUT)
		}
		for i := len(b.closers) - 1; i >= 0; i-- {
			b.closers[i].Close()
		}
		b.closers = nil
		if b.runErr != nil && !errors.Is(b.runErr, context.Canceled) {
			return fmt.Errorf("backend stopped with an error: %w", b.runErr)
		}
		return nil
	})
	if rc == -C.int(syscall.ETIMEDOUT) || rc == -C.int(syscall.EBADF) {
		return rc
	}
	// Stopped (cleanly or not): the handle goes, and its last message
	// moves to handle 0.
	hd := lookup(h)
	tableMu.Lock()
	delete(table, h)
	if rc != 0 && hd != nil {
		hd.mu.Lock()
		openErr = hd.lastErr
		hd.mu.Unlock()
	}
	tableMu.Unlock()
	return rc
}

//export vscsi_backend_stats
func vscsi_backend_stats(h C.int, jsonOut **C.char) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_backend_stats")
	if jsonOut != nil {
		*jsonOut = nil
	}
	return callBackend(h, func(hd *handle) error {
		if jsonOut == nil {
			return invalidArg("vscsi_backend_stats: json_out is NULL")
		}
		b := hd.be
		b.wait(0)
		snap := b.srv.Snapshot()
		raw, err := json.Marshal(snap)
		if err != nil {
			return err
		}
		// The snapshot's fields plus "running" and "error".
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		m["running"] = !b.ended
		if b.ended && b.runErr != nil {
			m["error"] = b.runErr.Error()
		}
		out, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		*jsonOut = C.CString(string(out) + "\n")
		return nil
	})
}
