package xsfake

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Started is a server with its dom0 socket in a private temporary directory.
type Started struct {
	*Server
	Dir    string // the temporary directory (removed by Close)
	Socket string // dom0 socket: the value for XENSTORED_PATH
}

// Start creates a server listening as dom0 on <new temp dir>/socket.
// Unix socket paths are limited to 107 bytes, so the directory is made
// under os.TempDir() with a short name rather than under a test's TempDir.
func Start() (*Started, error) {
	dir, err := os.MkdirTemp("", "xsf")
	if err != nil {
		return nil, err
	}
	s := &Started{Server: New(), Dir: dir, Socket: filepath.Join(dir, "socket")}
	if err := s.Listen(s.Socket, 0); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// ListenDomain opens <Dir>/socket.<domid>, where connections act as domid,
// and returns its path (use it as XENSTORED_PATH for a "guest" or
// "driver domain" process).
func (s *Started) ListenDomain(domid uint32) (string, error) {
	p := filepath.Join(s.Dir, "socket."+strconv.FormatUint(uint64(domid), 10))
	return p, s.Listen(p, domid)
}

// Close stops the server and removes its directory.
func (s *Started) Close() error {
	err := s.Server.Close()
	os.RemoveAll(s.Dir)
	return err
}

// StartT starts a server for a test, sets XENSTORED_PATH to its dom0 socket
// for the rest of the test (so libxenstore and the xenstore-* tools use it;
// this also means the test must not be parallel), and stops it at cleanup.
func StartT(t testing.TB) *Started {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatalf("xsfake: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	t.Setenv("XENSTORED_PATH", s.Socket)
	return s
}
