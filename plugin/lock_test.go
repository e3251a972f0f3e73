package plugin

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The per-vhost lock excludes, honours the context, and forgets idle keys.
func TestVHostLock(t *testing.T) {
	ts := &Toolstack{locks: map[vhostKey]*vhostLock{}}
	unlock, err := ts.lockVHosts(context.Background(), 5, []uint32{1, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ts.lockVHosts(c, 5, []uint32{0}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock of a held vhost: %v", err)
	}
	// Another domain's vhost 0 is independent.
	u2, err := ts.lockVHosts(context.Background(), 6, []uint32{0})
	if err != nil {
		t.Fatal(err)
	}
	u2()
	got := make(chan error, 1)
	go func() {
		u, err := ts.lockVHosts(context.Background(), 5, []uint32{0, 1})
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if len(ts.locks) != 0 {
		t.Errorf("%d lock entries left", len(ts.locks))
	}
}
