package hotplug

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Record is what add made for one vhost, kept in a state file under
// StateDir (tmpfs /run: it must not outlive the host's configfs, which a
// reboot empties too). It is the only thing remove acts on, so remove
// tears down exactly what add made and nothing else, even when udev runs
// it after the xenstore nodes are gone.
type Record struct {
	XenbusPath string      `json:"xenbus_path"`
	Devs       []DevRecord `json:"devs"`
}

// DevRecord is what add made for one dev-N.
type DevRecord struct {
	Dev     string `json:"dev"`     // "dev-0"
	PDev    string `json:"p_dev"`   // the p-dev the objects serve
	Backing string `json:"backing"` // the file or device behind it
	Steps   []Step `json:"steps"`   // creation order
}

// DefaultStateDir holds the records and the lock file.
const DefaultStateDir = "/run/govscsi/hotplug"

func recordPath(dir string, b BackendRef) string {
	// <type>-<domid>-<devid>.json: vscsi-5-0.json for xen-scsiback's vhosts.
	return filepath.Join(dir, fmt.Sprintf("%s-%d-%d.json", b.BackendType(), b.Domid, b.DevID))
}

// loadRecord reads a vhost's record; a missing one is empty.
func loadRecord(dir string, b BackendRef) (Record, error) {
	data, err := os.ReadFile(recordPath(dir, b))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{XenbusPath: b.Rel()}, nil
	}
	if err != nil {
		return Record{}, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, fmt.Errorf("state file %s: %w", recordPath(dir, b), err)
	}
	return r, nil
}

// saveRecord writes a record atomically (rename), or deletes the file if
// the record holds nothing.
func saveRecord(dir string, b BackendRef, r Record) error {
	p := recordPath(dir, b)
	empty := true
	for _, d := range r.Devs {
		if len(d.Steps) > 0 {
			empty = false
		}
	}
	if empty {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// lockFile takes the hotplug lock: one flock'ed file for all vscsi runs,
// because vhosts of different domains can share LIO objects (the HBA, a
// target) and configfs changes are not atomic. It polls so that a stuck
// holder turns into an error before libxl's 40 s hotplug timeout.
func lockFile(dir string, timeout time.Duration) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing drops the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("hotplug lock %s still held by another run after %v: %w", f.Name(), timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
