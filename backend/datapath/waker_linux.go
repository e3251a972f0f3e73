package datapath

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// waker lets workers (and Stop) wake the loop when it waits for a free
// slot. With a netpoller-capable event channel the loop waits on kick;
// otherwise it polls the event channel's fd together with an eventfd.
type waker struct {
	kick chan struct{}
	fd   int            // eventfd, or -1 when the loop uses the netpoller
	fds  [2]unix.PollFd // kept here so polling does not allocate
}

func newWaker(withFd bool) (*waker, error) {
	w := &waker{kick: make(chan struct{}, 1), fd: -1}
	if withFd {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("datapath: eventfd: %w", err)
		}
		w.fd = fd
	}
	return w, nil
}

func (w *waker) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
	if w.fd >= 0 {
		one := [8]byte{1}
		unix.Write(w.fd, one[:]) //nolint:errcheck // EAGAIN only if the counter is saturated: still readable
	}
}

func (w *waker) close() {
	if w.fd >= 0 {
		unix.Close(w.fd) //nolint:errcheck // nothing to do about it
	}
}

// wait blocks until evtFd or the waker is readable and reports whether evtFd
// is. A waker wake-up is consumed here.
func (w *waker) wait(evtFd int) (bool, error) {
	w.fds[0] = unix.PollFd{Fd: int32(evtFd), Events: unix.POLLIN}
	w.fds[1] = unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN}
	for {
		_, err := unix.Poll(w.fds[:], -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		break
	}
	if w.fds[1].Revents&unix.POLLIN != 0 {
		var buf [8]byte
		unix.Read(w.fd, buf[:]) //nolint:errcheck // EAGAIN if another reader won
	}
	if w.fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
		return false, fmt.Errorf("event channel fd %d: poll revents %#x", evtFd, w.fds[0].Revents)
	}
	return w.fds[0].Revents&unix.POLLIN != 0, nil
}
