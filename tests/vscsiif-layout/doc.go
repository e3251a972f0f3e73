// Package layout reads struct offsets and sizes from Xen's real
// <xen/io/vscsiif.h> and <xen/io/ring.h> with cgo, so the test next to it can
// compare them with the hand-written constants in backend/vscsiif and
// backend/ring. It exists only for that test: cgo is not allowed in _test.go.
// Without cgo the package is empty and the test does not run.
package layout
