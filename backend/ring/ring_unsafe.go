package ring

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// This file holds the only unsafe code of the package: atomic access to the
// 32-bit indices inside the shared page.

func word(page []byte, off int) *uint32 {
	_ = page[off : off+4] // bounds check without reading the word
	return (*uint32)(unsafe.Pointer(&page[off]))
}

func load32(page []byte, off int) uint32 { return atomic.LoadUint32(word(page, off)) }

func store32(page []byte, off int, v uint32) { atomic.StoreUint32(word(page, off), v) }

func (b *Back) load(off int) uint32      { return load32(b.page, off) }
func (b *Back) store(off int, v uint32)  { store32(b.page, off, v) }
func (f *Front) load(off int) uint32     { return load32(f.page, off) }
func (f *Front) store(off int, v uint32) { store32(f.page, off, v) }

// checkAlign refuses a page whose index words are not 4-byte aligned:
// atomics on misaligned words are not atomic (and fault on some CPUs). A
// mapped grant page is always page-aligned; a test buffer from make() is too.
func checkAlign(page []byte) error {
	if uintptr(unsafe.Pointer(&page[0]))%4 != 0 {
		return fmt.Errorf("ring: page at %p is not 4-byte aligned", &page[0])
	}
	return nil
}
