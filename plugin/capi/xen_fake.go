//go:build govscsi_fakexen

package main

// Test-only (build tag govscsi_fakexen; tests/cshared/run.sh builds a
// second library with it, the production libgovscsi.so never contains
// this file): the embedded backend runs on libxenstore as usual but on
// libxlgo/xenfake's in-process grant table and event channels, since a
// test host has no /dev/xen. A guest in another process cannot grant a
// page into this process's fake table, so for every domid listed in
// GOVSCSI_FAKEXEN_GUESTS (comma-separated) vscsi_backend_start makes the
// guest's ring here: one granted, initialised ring page and one unbound
// port, published as /local/domain/<domid>/data/fakexen-ring-ref and
// .../fakexen-event-channel for the test's frontend peer to write into its
// vhost (tests/cshared/peer -frontend-only). The variable is read only in
// this build, as is GOVSCSI_FAKEXEN_PANIC (see xenDeps).

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/server"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
)

// fakeRings keeps the guests' ring pages alive (the fake grant table
// aliases them) for the life of the process. The fake hypervisor (grant
// table, event channels, the guests' rings) is made by the first
// vscsi_backend_start and shared by every later one, as the real one is:
// a backend started after another one's handover finds the guests' rings
// and ports where the first left them.
var (
	fakeRings  [][]byte
	fakeGrants *xenfake.Grants
	fakeHub    *xenfake.EventHub
)

func xenDeps() (server.Deps, []io.Closer, error) {
	// While the file GOVSCSI_FAKEXEN_PANIC names exists,
	// vscsi_backend_start panics here, so c/tests/test_badargs.c sees the
	// export's guard turn a Go panic into -EIO and a message instead of an
	// abort of the host process. (A file, not the variable itself: the Go
	// runtime copies the environment when the library loads.)
	if p := os.Getenv("GOVSCSI_FAKEXEN_PANIC"); p != "" {
		if _, err := os.Stat(p); err == nil {
			panic("GOVSCSI_FAKEXEN_PANIC: " + p + " exists")
		}
	}
	store, err := xs.Open(0)
	if err != nil {
		return server.Deps{}, nil, fmt.Errorf("cannot connect to xenstore: %w", err)
	}
	if fakeGrants != nil {
		hub := fakeHub
		return server.Deps{Store: store, Grants: fakeGrants,
			OpenEvents: func() (xenif.EventChannel, error) { return hub.Open(0) }}, []io.Closer{store}, nil
	}
	grants, hub := xenfake.NewGrants(), xenfake.NewEventHub()
	if list := os.Getenv("GOVSCSI_FAKEXEN_GUESTS"); list != "" {
		for _, f := range strings.Split(list, ",") {
			domid, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil {
				store.Close()
				return server.Deps{}, nil, fmt.Errorf("GOVSCSI_FAKEXEN_GUESTS: %q: %w", f, err)
			}
			page := make([]byte, vscsiif.PageSize)
			if _, err := ring.NewFront(page, vscsiif.RequestSize); err != nil {
				store.Close()
				return server.Deps{}, nil, err
			}
			fakeRings = append(fakeRings, page)
			ref := grants.Grant(uint32(domid), page, false)
			port := hub.Guest(uint32(domid)).AllocUnbound(0)
			base := fmt.Sprintf("/local/domain/%d/data/", domid)
			for k, v := range map[string]uint32{"fakexen-ring-ref": ref, "fakexen-event-channel": port} {
				if err := store.Write(xenif.NoTx, base+k, strconv.FormatUint(uint64(v), 10)); err != nil {
					store.Close()
					return server.Deps{}, nil, fmt.Errorf("publishing %s: %w", base+k, err)
				}
			}
		}
	}
	fakeGrants, fakeHub = grants, hub
	return server.Deps{Store: store, Grants: grants,
		OpenEvents: func() (xenif.EventChannel, error) { return hub.Open(0) }}, []io.Closer{store}, nil
}
