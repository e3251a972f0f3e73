// Package xenif holds the small, pure-Go types and interfaces that sit between
// govscsi's logic and the Xen libraries: xenstore permissions, grant-copy
// operations, grant mapping and event channels.
//
// The cgo wrappers in libxlgo/xs, libxlgo/gnttab and libxlgo/evtchn implement
// these interfaces against Debian's libxenstore, libxengnttab and
// libxenevtchn; fakes implement them for tests without Xen. Code outside
// libxlgo depends only on this package, so it stays pure Go.
package xenif
