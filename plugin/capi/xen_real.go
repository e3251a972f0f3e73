//go:build !govscsi_fakexen

package main

import (
	"fmt"
	"io"

	"github.com/govscsi/govscsi/backend/server"
	"github.com/govscsi/govscsi/libxlgo/evtchn"
	"github.com/govscsi/govscsi/libxlgo/gnttab"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
)

// xenDeps opens what the embedded backend runs on: a libxenstore
// connection, /dev/xen/gntdev and /dev/xen/evtchn (as the vscsi-backend
// daemon does). The closers release them, last first.
func xenDeps() (server.Deps, []io.Closer, error) {
	store, err := xs.Open(0)
	if err != nil {
		return server.Deps{}, nil, fmt.Errorf("cannot connect to xenstore: %w", err)
	}
	grants, err := gnttab.Open()
	if err != nil {
		store.Close()
		return server.Deps{}, nil, fmt.Errorf("cannot open the grant device (is xen-gntdev loaded?): %w", err)
	}
	ev, err := evtchn.Open()
	if err != nil {
		grants.Close()
		store.Close()
		return server.Deps{}, nil, fmt.Errorf("cannot open the event-channel device (is xen-evtchn loaded?): %w", err)
	}
	ev.Close()
	return server.Deps{Store: store, Grants: grants,
		OpenEvents: func() (xenif.EventChannel, error) { return evtchn.Open() }}, []io.Closer{store, grants}, nil
}
