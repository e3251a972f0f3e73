package xenif

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"
)

// Tx names a xenstore transaction. NoTx (XBT_NULL) means "outside any
// transaction": the operation is applied on its own.
type Tx uint32

// NoTx is XBT_NULL, the "no transaction" id.
const NoTx Tx = 0

// WatchEvent is one watch firing: Path is the node that changed (or the
// special path "@introduceDomain"/"@releaseDomain"), Token the string given
// to Watch. As in xenstored, the event only says "look again": the value may
// have changed again, or the node may be gone, by the time it is read.
type WatchEvent struct {
	Path  string
	Token string
}

// Store is a connection to xenstore. Implementations: libxlgo/xs (cgo over
// Debian's libxenstore) and libxlgo/xsfake (pure Go, for tests).
//
// Errors wrap a syscall.Errno, so errors.Is(err, syscall.ENOENT) (or
// fs.ErrNotExist), syscall.EACCES, syscall.EAGAIN, ... work, and the message
// names the operation and path ("xs read /local/domain/5/x: no such file or
// directory"). Operations on a closed Store fail with ErrStoreClosed.
//
// A Store is safe for concurrent use by several goroutines. Requests are
// serialised on the one connection, as libxenstore does.
type Store interface {
	// Read returns a node's value. A missing node is ENOENT.
	Read(tx Tx, path string) (string, error)
	// Write sets a node's value, creating it and any missing parents.
	Write(tx Tx, path, value string) error
	// Mkdir creates an empty node (and missing parents); an existing node is
	// left alone and is not an error.
	Mkdir(tx Tx, path string) error
	// Rm removes a node and everything below it. A missing node is not an
	// error if its parent exists (xenstored's rule); otherwise ENOENT.
	Rm(tx Tx, path string) error
	// Directory lists a node's children (names only, not full paths).
	Directory(tx Tx, path string) ([]string, error)
	// GetPerms returns a node's permission list (owner first).
	GetPerms(tx Tx, path string) (Perms, error)
	// SetPerms replaces a node's permission list. Only the owner and dom0
	// may do this.
	SetPerms(tx Tx, path string, p Perms) error
	// Begin starts a transaction. Reads inside it see a snapshot; its writes
	// become visible to others only when End commits it.
	Begin() (Tx, error)
	// End commits (abort=false) or discards (abort=true) a transaction.
	// A commit that conflicts with a concurrent change fails with EAGAIN
	// and changes nothing; see Transact for the retry loop.
	End(tx Tx, abort bool) error
	// Watch registers a watch on path (and everything below it) or on a
	// special path "@introduceDomain"/"@releaseDomain". xenstored fires
	// every new watch once straight away, so a caller can register first
	// and then read without missing a change.
	Watch(path, token string) error
	// Unwatch removes a watch registered with the same path and token.
	Unwatch(path, token string) error
	// Events delivers the watch events of this connection. The channel is
	// closed by Close. Read it promptly: a slow reader holds up delivery.
	// Only one goroutine should consume it; see libxlgo/xsutil.Mux to share
	// one connection's watches among several users.
	Events() <-chan WatchEvent
	// DomainPath returns the home path of a domain, "/local/domain/<domid>".
	DomainPath(domid uint32) (string, error)
	// Close releases the connection. It is safe to call more than once; the
	// second and later calls return nil.
	Close() error
}

// Special watch paths fired by xenstored when a domain is introduced or
// released (XS_INTRODUCE / XS_RELEASE, and domain death).
const (
	WatchIntroduceDomain = "@introduceDomain"
	WatchReleaseDomain   = "@releaseDomain"
)

// ErrStoreClosed is returned by a Store used after Close.
var ErrStoreClosed = errors.New("xenstore connection closed")

// Transact runs fn inside a transaction and commits it, starting over (at
// most max attempts in all) when the commit fails with EAGAIN because
// someone else changed what the transaction read. fn must be safe to run
// more than once: it sees a fresh snapshot each time. If fn returns an
// error the transaction is aborted and that error returned. Between
// attempts it waits a random while, up to 1 ms doubling to 64 ms (a
// randomized exponential backoff): writers that retry at once, in
// lockstep, conflict again and again (four concurrent attaches on one
// domain ran out of 20 attempts under the race detector).
func Transact(s Store, max int, fn func(tx Tx) error) error {
	if max < 1 {
		max = 1
	}
	var last error
	for attempt := 0; attempt < max; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond << min(attempt-1, 6)))))
		}
		tx, err := s.Begin()
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			// The abort's own error is less interesting than fn's.
			_ = s.End(tx, true)
			if errors.Is(err, syscall.EAGAIN) {
				// A read inside the transaction may itself report EAGAIN
				// (xenstored does for a transaction it already knows is
				// doomed); retry as for a failed commit.
				last = err
				continue
			}
			return err
		}
		err = s.End(tx, false)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EAGAIN) {
			return err
		}
		last = err
	}
	return fmt.Errorf("xenstore transaction still conflicting after %d attempts: %w", max, last)
}
