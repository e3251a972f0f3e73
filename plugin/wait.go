package plugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// errDomainGone is returned by a wait whose guest vanished
// (/local/domain/<domid> removed) while the operation was in progress.
var errDomainGone = errors.New("the domain disappeared")

// ErrTimeout wraps every wait that ran out of time (errors.Is works with
// both ErrTimeout and context.DeadlineExceeded).
var ErrTimeout = errors.New("timed out")

type timeoutError struct {
	what string
	last string
	err  error
}

func (e *timeoutError) Error() string {
	if errors.Is(e.err, context.Canceled) {
		// Given up by the caller (vscsi_abort, vscsi_close, a signal): it
		// is handled as a timeout (the operation undoes its writes), but
		// it is not one.
		return fmt.Sprintf("cancelled while waiting for %s (%s)", e.what, e.last)
	}
	return fmt.Sprintf("timed out waiting for %s (%s)", e.what, e.last)
}
func (e *timeoutError) Unwrap() []error { return []error{ErrTimeout, e.err} }

// waitUntil evaluates check now and after every change below any of paths
// (xenstore watches, no polling), until check reports done or an error, or
// ctx ends. check also returns a description of the current situation for
// the timeout message. Watches are removed on return.
func (t *Toolstack) waitUntil(ctx context.Context, what string, paths []string, check func() (bool, string, error)) error {
	wake := make(chan struct{}, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for _, p := range paths {
		ch, cancel, err := t.mux.Watch(p)
		if err != nil {
			return fmt.Errorf("watching %s: %w", p, err)
		}
		defer cancel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case _, ok := <-ch:
					if !ok {
						return
					}
					select {
					case wake <- struct{}{}:
					default:
					}
				case <-stop:
					return
				}
			}
		}()
	}
	last := ""
	for {
		done, desc, err := check()
		if err != nil || done {
			return err
		}
		last = desc
		select {
		case <-wake:
		case <-ctx.Done():
			return &timeoutError{what: what, last: last, err: ctx.Err()}
		}
	}
}

// domainAlive reports whether /local/domain/<domid> still exists.
func (t *Toolstack) domainAlive(domid uint32) (bool, error) {
	_, err := t.s.Read(xenif.NoTx, domainPath(domid))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, syscall.ENOENT) {
		return false, nil
	}
	return false, err
}
