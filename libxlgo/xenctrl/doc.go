// Package xenctrl is the cgo wrapper of the few libxenctrl calls govscsi
// needs: pausing and unpausing a domain and reading its info
// (xenif.DomainControl). vscsi-autoattach and xl-vscsi use it to hold a
// new domain until its vscsi devices are connected on the backend side.
//
// libxenctrl opens /dev/xen/privcmd, so Open works only in a privileged
// domain of a Xen host; tests without Xen use xenfake.Domains.
package xenctrl
