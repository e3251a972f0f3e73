package main

import "C"

import (
	"fmt"
	"runtime/debug"
	"syscall"
)

// recoverExport, deferred first in every export that runs Go code, turns a
// panic into -EIO with the message on handle h (if it is a handle, and its
// lock is free: the panic may have left it held) or else handle 0
// (vscsi_errmsg), and in the log: no Go panic crosses into C, and the host
// process goes on.
func recoverExport(h C.int, rc *C.int, where string) {
	r := recover()
	if r == nil {
		return
	}
	msg := fmt.Sprintf("%s: internal error in libgovscsi (a bug: please report it with this message): %v", where, r)
	logInternal(msg, debug.Stack())
	*rc = -C.int(syscall.EIO)
	if hd := lookup(h); hd != nil && hd.mu.TryLock() {
		hd.lastErr = msg
		hd.mu.Unlock()
		return
	}
	if tableMu.TryLock() {
		openErr = msg
		tableMu.Unlock()
	}
}

// setOpenErr records msg as handle 0's message.
func setOpenErr(msg string) {
	tableMu.Lock()
	openErr = msg
	tableMu.Unlock()
}
