// Package backend is govscsi's userspace vscsiif backend: it maps the guest's
// ring, moves data by grant copy, binds the event channel and serves SCSI.
package backend
