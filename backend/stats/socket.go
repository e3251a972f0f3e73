package stats

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultSocket is where the daemon listens unless configured otherwise.
const DefaultSocket = "/run/govscsi/vscsi-backend.sock"

// maxRequest bounds one request line.
const maxRequest = 4096

type request struct {
	Op   string `json:"op"`
	Mode string `json:"mode,omitempty"` // "stop": handover or disconnect
}

// StopReply answers a "stop" request: the daemon has started to stop.
type StopReply struct {
	Stopping bool   `json:"stopping"`
	Mode     string `json:"mode"`   // handover or disconnect
	Pid      int    `json:"pid"`    // the daemon's process
	Vhosts   int    `json:"vhosts"` // connected vhosts it is handing over or disconnecting
}

// Controls are the requests besides "stats" a daemon answers on its socket.
type Controls struct {
	// Stop starts stopping the daemon in mode ("handover" or
	// "disconnect"); nil: "stop" is refused.
	Stop func(mode string) (StopReply, error)
}

type errorReply struct {
	Error string `json:"error"`
}

// Listen creates the Unix socket at path (mode 0600, parent directory
// created 0755; a stale socket file is replaced).
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("stats socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("stats socket: %s exists and is not a socket", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("stats socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("stats socket: %w", err)
	}
	return l, nil
}

// maxConns bounds the connections served at once: each holds a descriptor
// (up to the 5 s deadline), and a client flood must not take the
// descriptors the backend needs to open LUNs. Further clients wait in the
// listen backlog.
const maxConns = 32

// Accept backoff after a transient error, like net/http's: 5 ms doubling
// to 1 s, reset by the next successful Accept.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Serve answers stats requests on l until ctx ends (then it closes l and
// waits for the connections being served). snap builds each answer.
// Accept errors other than the listener's closing (EMFILE, ENFILE,
// ENOBUFS, ECONNABORTED, ...) are transient: Serve logs them and retries
// with backoff, so a burst of descriptor exhaustion does not end the
// endpoint. log may be nil.
func Serve(ctx context.Context, l net.Listener, snap func() Snapshot, log hclog.Logger) error {
	return ServeControls(ctx, l, snap, Controls{}, log)
}

// ServeControls is Serve that also answers the control requests in ctl:
// {"op":"stop","mode":"handover"|"disconnect"} (xl-vscsi backend-stop).
// The socket is mode 0600 (root only), like the stats it serves.
func ServeControls(ctx context.Context, l net.Listener, snap func() Snapshot, ctl Controls, log hclog.Logger) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer wg.Wait()
	slots := make(chan struct{}, maxConns)
	var delay time.Duration
	failures := 0
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := l.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			failures++
			delay = min(max(2*delay, minBackoff), maxBackoff)
			// One line when the trouble starts, then one per second at
			// most (the backoff's cap).
			if failures == 1 || delay == maxBackoff {
				log.Warn("stats socket: accept failed, retrying", "error", err, "failures", failures, "retry_in", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		if failures > 0 {
			log.Info("stats socket: accepting again", "failures", failures)
			failures, delay = 0, 0
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			serveConn(c, snap, ctl)
		}()
	}
}

func serveConn(c net.Conn, snap func() Snapshot, ctl Controls) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // best effort
	line, err := bufio.NewReaderSize(&limitReader{c, maxRequest}, 512).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var req request
	enc := json.NewEncoder(c)
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(errorReply{Error: "bad request: " + err.Error()}) //nolint:errcheck // client gone is fine
		return
	}
	switch req.Op {
	case "stats":
		enc.Encode(snap()) //nolint:errcheck // client gone is fine
	case "stop":
		if ctl.Stop == nil {
			enc.Encode(errorReply{Error: "this backend cannot be stopped through its socket"}) //nolint:errcheck // client gone is fine
			return
		}
		if req.Mode != "handover" && req.Mode != "disconnect" {
			enc.Encode(errorReply{Error: fmt.Sprintf("stop mode %q: want \"handover\" or \"disconnect\"", req.Mode)}) //nolint:errcheck // client gone is fine
			return
		}
		r, err := ctl.Stop(req.Mode)
		if err != nil {
			enc.Encode(errorReply{Error: err.Error()}) //nolint:errcheck // client gone is fine
			return
		}
		enc.Encode(r) //nolint:errcheck // client gone is fine
	default:
		enc.Encode(errorReply{Error: fmt.Sprintf("unknown op %q (want \"stats\" or \"stop\")", req.Op)}) //nolint:errcheck // client gone is fine
	}
}

type limitReader struct {
	c net.Conn
	n int
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}

// Fetch asks the daemon listening on socket for a snapshot.
func Fetch(ctx context.Context, socket string) (Snapshot, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return Snapshot{}, fmt.Errorf("vscsi-backend stats: %w (is the daemon running?)", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl) //nolint:errcheck // best effort
	} else {
		c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // best effort
	}
	if _, err := c.Write([]byte("{\"op\":\"stats\"}\n")); err != nil {
		return Snapshot{}, fmt.Errorf("vscsi-backend stats: %w", err)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(c).Decode(&raw); err != nil {
		return Snapshot{}, fmt.Errorf("vscsi-backend stats: reading the answer: %w", err)
	}
	var er errorReply
	if json.Unmarshal(raw, &er) == nil && er.Error != "" {
		return Snapshot{}, fmt.Errorf("vscsi-backend stats: daemon says: %s", er.Error)
	}
	var s Snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		return Snapshot{}, fmt.Errorf("vscsi-backend stats: decoding the answer: %w", err)
	}
	return s, nil
}

// Stop asks the daemon listening on socket to stop in mode ("handover":
// leave its guests connected for the next daemon; "disconnect": close
// every guest's vhost first). It returns once the daemon has accepted; the
// daemon then stops (its socket goes away when it is done).
func Stop(ctx context.Context, socket, mode string) (StopReply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return StopReply{}, fmt.Errorf("vscsi-backend stop: %w (is the daemon running?)", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // best effort
	req, _ := json.Marshal(request{Op: "stop", Mode: mode})
	if _, err := c.Write(append(req, '\n')); err != nil {
		return StopReply{}, fmt.Errorf("vscsi-backend stop: %w", err)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(c).Decode(&raw); err != nil {
		return StopReply{}, fmt.Errorf("vscsi-backend stop: reading the answer: %w", err)
	}
	var er errorReply
	if json.Unmarshal(raw, &er) == nil && er.Error != "" {
		return StopReply{}, fmt.Errorf("vscsi-backend stop: daemon says: %s", er.Error)
	}
	var r StopReply
	if err := json.Unmarshal(raw, &r); err != nil || !r.Stopping {
		return StopReply{}, fmt.Errorf("vscsi-backend stop: unexpected answer %s", raw)
	}
	return r, nil
}
