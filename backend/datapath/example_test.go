package datapath_test

import (
	"context"
	"time"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
)

// How the xenbus layer runs one vhost: once the frontend is Initialised it
// reads ring-ref and event-channel, starts a Conn with a dedicated event
// channel and the vhost's LUN table, advertises Conn.MaxSegments as
// feature-sg-grant, and on Done (ring violation) or Closing stops it with a
// deadline. Here the grant table and event channels are xenfake's.
func ExampleStart() {
	const guest = 5
	grants := xenfake.NewGrants()
	hub := xenfake.NewEventHub()
	ringPage := make([]byte, vscsiif.PageSize) // the guest's ring page...
	ringRef := grants.Grant(guest, ringPage, false)
	remotePort := hub.Guest(guest).AllocUnbound(0) // ...and its unbound port
	events, _ := hub.Open(0)                       // one device per connection
	defer events.Close()

	var table datapath.Table
	table.Set(datapath.Addr{Channel: 0, Target: 0, LUN: 0},
		datapath.Entry{LUN: scsi.NewNull(), Inline: true})

	conn, err := datapath.Start(datapath.Config{
		FrontendDomid: guest, RingRef: ringRef, RemotePort: remotePort,
		Grants: grants, Events: events, Resolver: &table,
	})
	if err != nil {
		return // xenbus: fatal error "<errno> mapping ring", state Closing
	}
	_ = conn.MaxSegments() // write as feature-sg-grant before InitWait

	select {
	case <-conn.Done(): // ring protocol violation: xenbus fatal error conn.Err()
	case <-time.After(10 * time.Millisecond): // frontend went to Closing
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Stop(ctx) // bounded: in-flight answered, ring unmapped, port unbound
}
