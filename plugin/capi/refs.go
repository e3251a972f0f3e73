package main

// Opaque pointers handed to C (vscsi_evsub *): github.com/mattn/go-pointer
// keys a Go value by a one-byte C allocation, so C holds a real pointer
// that no Go pointer rule forbids it to keep, and the value stays
// reachable from Go while C has it. (The C toolstack's own user pointers
// are C memory: the library keeps them as they are and hands them back.)
// liveRefs counts the entries for leak checks (vscsi_debug_pointers).

import "C"

import (
	"sync/atomic"
	"unsafe"

	pointer "github.com/mattn/go-pointer"
)

var liveRefs atomic.Int64

func saveRef(v any) unsafe.Pointer {
	p := pointer.Save(v)
	liveRefs.Add(1)
	return p
}

// restoreRef is the value saved under p, nil if p is not (or no longer) one.
func restoreRef(p unsafe.Pointer) any { return pointer.Restore(p) }

func unrefRef(p unsafe.Pointer) {
	pointer.Unref(p)
	liveRefs.Add(-1)
}

//export vscsi_debug_pointers
func vscsi_debug_pointers() C.int { return C.int(liveRefs.Load()) }
