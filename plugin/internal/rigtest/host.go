// Package rigtest is the xenstore set-up the tests of plugin and its
// commands share: an xsfake server seen from dom0 (Host), domains as xl
// makes them, and govscsi's real userspace backend running in the test
// process (Backend). Only tests import it.
package rigtest

import (
	"strconv"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
)

// N0 is dom0-only access: owner dom0, nobody else may read.
var N0 = xenif.Perms{{Domid: 0, Bits: xenif.PermNone}}

// Host is an xsfake server (XENSTORED_PATH points at it for the test)
// with a dom0 client for setting up and checking the tree. Its helpers end
// the test on any failure.
type Host struct {
	T     testing.TB
	Srv   *xsfake.Started
	Admin *xsfake.Client
}

// NewHost starts the server and makes dom0 as the host has it: its home
// and backend directory (dom0 only) and its name.
func NewHost(t testing.TB) *Host {
	t.Helper()
	h := &Host{T: t, Srv: xsfake.StartT(t)}
	var err error
	if h.Admin, err = h.Srv.Connect(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Admin.Close() })
	h.Mkdir("/local/domain/0", N0)
	h.Write("/local/domain/0/name", "Domain-0")
	h.Mkdir("/local/domain/0/backend", N0)
	return h
}

// Home is domain domid's home, /local/domain/<domid>.
func Home(domid uint32) string { return "/local/domain/" + strconv.FormatUint(uint64(domid), 10) }

// Guest makes domain domid as xl leaves it before adding devices: its home
// (readable by it) with its name, its device directory (its own, dom0 may
// read) and /libxl/<domid> (dom0 only); then the domain is introduced.
func (h *Host) Guest(domid uint32, name string) {
	h.T.Helper()
	h.Mkdir(Home(domid), xenif.Perms{{Domid: 0, Bits: xenif.PermNone}, {Domid: domid, Bits: xenif.PermRead}})
	h.Write(Home(domid)+"/name", name)
	h.Mkdir(Home(domid)+"/device", xenif.Perms{{Domid: domid, Bits: xenif.PermNone}, {Domid: 0, Bits: xenif.PermRead}})
	h.Mkdir("/libxl/"+strconv.FormatUint(uint64(domid), 10), N0)
	h.Srv.IntroduceDomain(domid)
}

// Mkdir makes p with perms.
func (h *Host) Mkdir(p string, perms xenif.Perms) {
	h.T.Helper()
	if err := h.Admin.Mkdir(xenif.NoTx, p); err != nil {
		h.T.Fatal(err)
	}
	if err := h.Admin.SetPerms(xenif.NoTx, p, perms); err != nil {
		h.T.Fatal(err)
	}
}

// Write writes v to p.
func (h *Host) Write(p, v string) {
	h.T.Helper()
	if err := h.Admin.Write(xenif.NoTx, p, v); err != nil {
		h.T.Fatal(err)
	}
}

// Read is p's value; p must exist.
func (h *Host) Read(p string) string {
	h.T.Helper()
	v, err := h.Admin.Read(xenif.NoTx, p)
	if err != nil {
		h.T.Fatalf("read %s: %v", p, err)
	}
	return v
}

// Exists tells whether p exists (dom0 may read everything).
func (h *Host) Exists(p string) bool {
	_, err := h.Admin.Read(xenif.NoTx, p)
	return err == nil
}
