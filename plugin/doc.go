// Package plugin is govscsi's toolstack: it creates vhosts, hot-adds and
// hot-removes devices, lists and destroys them, following the vscsiif state
// protocol. The CLI xl-vscsi (plugin/cmd/xl-vscsi) and the C API of
// libgovscsi.so (plugin/capi) are thin layers over it.
package plugin
