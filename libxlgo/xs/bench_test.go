//go:build linux && cgo

package xs

import (
	"os"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
)

// Round trips through the real libxenstore to the xsfake server (Unix
// socket), and the pure-Go client over the same socket, for comparison.
//
// With the server in the same process, a libxenstore call blocked in C
// holds its P until sysmon hands it off, which inflates the libxenstore
// numbers; set XS_BENCH_SOCKET to the socket of a fake-xenstored started
// outside (scripts/fake-xenstored.sh) for numbers like a real deployment's.
func benchStores(b *testing.B, fn func(b *testing.B, s xenif.Store)) {
	socket := os.Getenv("XS_BENCH_SOCKET")
	if socket == "" {
		socket = xsfake.StartT(b).Socket
	} else {
		b.Setenv("XENSTORED_PATH", socket)
	}
	b.Run("libxenstore", func(b *testing.B) {
		h, err := Open(0)
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		fn(b, h)
	})
	b.Run("goclient", func(b *testing.B) {
		c, err := xsfake.Dial(socket)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		fn(b, c)
	})
}

func BenchmarkRead(b *testing.B) {
	benchStores(b, func(b *testing.B, s xenif.Store) {
		if err := s.Write(xenif.NoTx, "/bench/state", "4"); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Read(xenif.NoTx, "/bench/state"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTransactWrite4(b *testing.B) {
	benchStores(b, func(b *testing.B, s xenif.Store) {
		for b.Loop() {
			err := xenif.Transact(s, 10, func(tx xenif.Tx) error {
				for _, k := range []string{"a", "b", "c", "d"} {
					if err := s.Write(tx, "/bench/dev/"+k, "v"); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkWatchEvent(b *testing.B) {
	benchStores(b, func(b *testing.B, s xenif.Store) {
		if err := s.Watch("/bench/w", "t"); err != nil {
			b.Fatal(err)
		}
		<-s.Events()
		for b.Loop() {
			if err := s.Write(xenif.NoTx, "/bench/w", "x"); err != nil {
				b.Fatal(err)
			}
			<-s.Events()
		}
	})
}
