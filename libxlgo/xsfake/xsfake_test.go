package xsfake_test

import (
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/libxlgo/xsfake/storetest"
)

// The behavioural suite through the pure-Go client, over Unix sockets (the
// same path libxenstore takes) for dom0 and per-domain listeners.
func TestStoreSuiteGoClientSocket(t *testing.T) {
	sockets := map[*xsfake.Started]map[uint32]string{}
	storetest.Run(t, func(t *testing.T, srv *xsfake.Started, domid uint32) xenif.Store {
		path := srv.Socket
		if domid != 0 {
			if sockets[srv] == nil {
				sockets[srv] = map[uint32]string{}
			}
			if path = sockets[srv][domid]; path == "" {
				var err error
				if path, err = srv.ListenDomain(domid); err != nil {
					t.Fatal(err)
				}
				sockets[srv][domid] = path
			}
		}
		c, err := xsfake.Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// The same suite over in-process pipes (Server.Connect).
func TestStoreSuiteGoClientPipe(t *testing.T) {
	storetest.Run(t, func(t *testing.T, srv *xsfake.Started, domid uint32) xenif.Store {
		c, err := srv.Connect(domid)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
