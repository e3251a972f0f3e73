package xenbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// The state directory (Config.StateDir) holds what must outlive the
// process, on tmpfs:
//
//	lock                          flock'ed by the running backend; its pid
//	<domid>/domain                the domain's identity (its xenstore "vm" path)
//	<domid>/<vhost>/ring.journal  the ring's in-flight journal (package journal)
//	<domid>/<vhost>/<dev>.lun     a LUN's state (a RAM disk)
//
// A vhost's directory goes when the vhost is really removed, a domain's
// when the domain is gone (also found at start-up: domains that died while
// no backend ran). A handover or a crash keeps everything.

const (
	lockFile    = "lock"
	domainFile  = "domain"
	journalFile = "ring.journal"
)

// lockState takes StateDir's lock: two backends on one directory would
// serve the same vhosts (a restarted daemon started while the old one is
// still handing over). It waits up to LockWait, saying whom it waits for.
func (b *Backend) lockState(ctx context.Context) (unlock func(), err error) {
	dir := b.cfg.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("xenbus: state directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("xenbus: state lock %s: %w", path, err)
	}
	start := time.Now()
	lastLog := time.Time{}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			unix.Close(fd) //nolint:errcheck // already failing
			return nil, fmt.Errorf("xenbus: state lock %s: %w", path, err)
		}
		if time.Since(start) > b.cfg.LockWait || ctx.Err() != nil {
			unix.Close(fd) //nolint:errcheck // already failing
			return nil, fmt.Errorf("xenbus: state lock %s still held by pid %s after %v (another backend serves %s)",
				path, lockHolder(path), time.Since(start).Round(time.Millisecond), b.root)
		}
		if time.Since(lastLog) > 5*time.Second {
			b.log.Info("waiting for the previous backend to finish its handover", "lock", path, "pid", lockHolder(path),
				"waited", time.Since(start).Round(time.Millisecond))
			lastLog = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if waited := time.Since(start); waited > 50*time.Millisecond {
		b.log.Info("previous backend gone: taking over", "waited", waited.Round(time.Millisecond))
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if unix.Ftruncate(fd, 0) == nil {
		unix.Pwrite(fd, pid, 0) //nolint:errcheck // informational
	}
	return func() { unix.Close(fd) }, nil //nolint:errcheck // closing drops the lock
}

func lockHolder(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil || len(raw) == 0 {
		return "?"
	}
	return strings.TrimSpace(string(raw))
}

// domainDir is the state directory of domain domid.
func (b *Backend) domainDir(domid uint32) string {
	return filepath.Join(b.cfg.StateDir, strconv.FormatUint(uint64(domid), 10))
}

// sweepState removes the state of domains that no longer exist (they died
// while no backend ran).
func (b *Backend) sweepState() {
	ents, err := os.ReadDir(b.cfg.StateDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		domid, err := ParseDomid(e.Name())
		if err != nil || !e.IsDir() || strconv.FormatUint(uint64(domid), 10) != e.Name() {
			continue
		}
		if b.domainGone(domid) {
			b.forgetDomain(domid)
		}
	}
}

// forgetDomain deletes a dead domain's state (journals, RAM disks).
func (b *Backend) forgetDomain(domid uint32) {
	if b.cfg.StateDir == "" {
		return
	}
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	delete(b.domTags, domid)
	dir := b.domainDir(domid)
	if _, err := os.Stat(dir); err != nil {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		b.log.Warn("removing the state of a dead domain", "dir", dir, "error", err)
		return
	}
	b.log.Info("removed the state of a dead domain", "domid", domid, "dir", dir)
}

// checkDomainState makes sure the state directory of domid belongs to the
// domain running now: a domid can be reused by a new domain while no
// backend ran to see the old one die, and the new one must never find the
// old one's RAM disks. The identity is the domain's "vm" node (libxl's
// /vm/<uuid>); without one, the domid alone.
func (b *Backend) checkDomainState(domid uint32) {
	if b.cfg.StateDir == "" {
		return
	}
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	if b.domTags[domid] {
		return
	}
	vm, _ := b.cfg.Store.Read(xenif.NoTx, "/local/domain/"+strconv.FormatUint(uint64(domid), 10)+"/vm")
	tag := "vm " + vm + "\n"
	dir := b.domainDir(domid)
	path := filepath.Join(dir, domainFile)
	if old, err := os.ReadFile(path); err == nil && string(old) != tag {
		b.log.Warn("state of another domain with the same domid: removing it", "domid", domid, "dir", dir,
			"was", strings.TrimSpace(string(old)), "now", strings.TrimSpace(tag))
		if err := os.RemoveAll(dir); err != nil {
			b.log.Warn("removing stale domain state", "dir", dir, "error", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.log.Warn("creating the domain's state directory", "dir", dir, "error", err)
		return
	}
	if err := os.WriteFile(path, []byte(tag), 0o600); err != nil {
		b.log.Warn("writing the domain's identity", "path", path, "error", err)
		return
	}
	b.domTags[domid] = true
}

// vhostDir is a vhost's state directory ("" without a StateDir).
func (v *vhost) vhostDir() string {
	if v.b.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(v.b.domainDir(v.k.domid), v.k.vhost)
}

func (v *vhost) journalPath() string {
	if d := v.vhostDir(); d != "" {
		return filepath.Join(d, journalFile)
	}
	return ""
}

func (v *vhost) devStatePath(dev string) string {
	if d := v.vhostDir(); d != "" {
		return filepath.Join(d, dev+".lun")
	}
	return ""
}

// forgetState deletes the vhost's state: it is really removed.
func (v *vhost) forgetState() {
	d := v.vhostDir()
	if d == "" {
		return
	}
	if err := os.RemoveAll(d); err != nil {
		v.log.Warn("removing the vhost's state", "dir", d, "error", err)
	}
}
