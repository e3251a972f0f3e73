package store

import (
	"sync"
	"unsafe"
)

// DirectAlign is the buffer alignment O_DIRECT needs on every Linux block
// device we care about (the logical block size is at most 4096).
const DirectAlign = 4096

// MaxBounce is the largest chunk the bounce pool moves at once: the most a
// vscsiif request can carry (128 segments of 4 KiB).
const MaxBounce = 128 * 4096

// AlignedBuffer returns a zeroed n-byte slice whose first byte is
// DirectAlign-aligned. Callers that own their buffers (the datapath) can use
// it so that O_DIRECT block stores need no bounce copy.
func AlignedBuffer(n int) []byte {
	if n <= 0 {
		return nil
	}
	raw := make([]byte, n+DirectAlign)
	return raw[alignOffset(raw):][:n:n]
}

func alignOffset(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	mis := int(uintptr(unsafe.Pointer(&b[0])) & (DirectAlign - 1))
	if mis == 0 {
		return 0
	}
	return DirectAlign - mis
}

// IsAligned reports whether b starts on a DirectAlign boundary.
func IsAligned(b []byte) bool { return len(b) == 0 || alignOffset(b) == 0 }

// bouncePool recycles MaxBounce-sized aligned buffers (as pointers, so
// Get/Put do not allocate).
var bouncePool = sync.Pool{New: func() any { b := AlignedBuffer(MaxBounce); return &b }}
