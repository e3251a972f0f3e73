package main

import "C"

import (
	"fmt"
	"runtime/debug"
	"syscall"
)

// recoverExport, deferred first in an export, turns a panic into -EIO with
// the message on handle 0 (vscsi_errmsg(0, ...)) and in the log: no Go
// panic crosses into C.
func recoverExport(rc *C.int, where string) {
	if r := recover(); r != nil {
		msg := fmt.Sprintf("%s: internal error: %v", where, r)
		logInternal(msg, debug.Stack())
		setOpenErr(msg)
		*rc = -C.int(syscall.EIO)
	}
}

// setOpenErr records msg as handle 0's message.
func setOpenErr(msg string) {
	tableMu.Lock()
	openErr = msg
	tableMu.Unlock()
}
