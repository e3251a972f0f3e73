// Package prstore keeps the persistent reservation state of the emulated
// logical units in files an operator can read and delete, one per logical
// unit (docs/backend.md §9.2):
//
//	<run dir>/<naa>.json    every state with a registration or a
//	                        reservation; on tmpfs (/run/govscsi/pr): the
//	                        next process of a handover or a restart finds
//	                        it, a host reboot clears it
//	<aptpl dir>/<naa>.json  the same state while the last REGISTER asked
//	                        for APTPL (persist through power loss); on disk
//	                        (/var/lib/govscsi/pr), written with fsync
//
// A logical unit loads the run file if there is one (the newest state of
// this boot), else the APTPL file (after a reboot). A state without
// registrations and reservation removes both files. Deleting the files of
// a unit no guest has attached clears its reservations.
package prstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/scsi"
)

// Dirs are where the files live. An empty directory keeps no file of
// that kind (the state of the unit then lives in the process only for the
// run kind, or APTPL is not kept for the other).
type Dirs struct {
	Run   string
	APTPL string
	Log   hclog.Logger
}

// Default directories.
const (
	DefaultRunDir   = "/run/govscsi/pr"
	DefaultAPTPLDir = "/var/lib/govscsi/pr"
)

// maxFile bounds what Load reads: a unit has at most a few hundred
// registrations (one per guest vhost).
const maxFile = 1 << 20

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.]{0,63}$`)

// For returns the store of the logical unit named name (its NAA designator,
// e.g. "naa.3a1b2c3d4e5f6071"); backing describes it in the file (the
// p-dev and the resolved path), for the operator.
func (d Dirs) For(name, backing string) (scsi.PRStore, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("prstore: logical unit name %q: want lower-case letters, digits and dots", name)
	}
	if d.Log == nil {
		d.Log = hclog.NewNullLogger()
	}
	return &unitStore{d: d, name: name, backing: backing}, nil
}

type unitStore struct {
	d             Dirs
	name, backing string
}

// fileFormat is the file's JSON: readable by an operator (keys in hex).
type fileFormat struct {
	LogicalUnit   string         `json:"logical_unit"`
	Backing       string         `json:"backing"`
	Saved         time.Time      `json:"saved"`
	Generation    uint32         `json:"generation"`
	APTPL         bool           `json:"aptpl"`
	Registrations []registration `json:"registrations"`
	Reservation   *reservation   `json:"reservation,omitempty"`
}

type registration struct {
	Initiator      string `json:"initiator"`
	Key            string `json:"key"`
	AllTargetPorts bool   `json:"all_target_ports,omitempty"`
}

type reservation struct {
	Holder string `json:"holder,omitempty"`
	Type   uint8  `json:"type"`
	Name   string `json:"type_name"`
}

var typeNames = map[uint8]string{
	1: "write exclusive", 3: "exclusive access", 5: "write exclusive, registrants only",
	6: "exclusive access, registrants only", 7: "write exclusive, all registrants", 8: "exclusive access, all registrants",
}

func (s *unitStore) path(dir string) string { return filepath.Join(dir, s.name+".json") }

// Load implements scsi.PRStore.
func (s *unitStore) Load() (scsi.PRState, bool, error) {
	for _, dir := range []string{s.d.Run, s.d.APTPL} {
		if dir == "" {
			continue
		}
		st, ok, err := s.read(s.path(dir))
		if err != nil || ok {
			return st, ok, err
		}
	}
	return scsi.PRState{}, false, nil
}

func (s *unitStore) read(p string) (scsi.PRState, bool, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return scsi.PRState{}, false, nil
	}
	if err != nil {
		return scsi.PRState{}, false, fmt.Errorf("prstore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return scsi.PRState{}, false, fmt.Errorf("prstore: %w", err)
	}
	bad := func(why error) (scsi.PRState, bool, error) {
		return scsi.PRState{}, false, fmt.Errorf("prstore: %s: %w (remove the file to clear the logical unit's reservations)", p, why)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxFile {
		return bad(fmt.Errorf("not a regular file of at most %d bytes", maxFile))
	}
	var ff fileFormat
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ff); err != nil {
		return bad(err)
	}
	if ff.LogicalUnit != s.name {
		return bad(fmt.Errorf("the file is of logical unit %q", ff.LogicalUnit))
	}
	st := scsi.PRState{Generation: ff.Generation, APTPL: ff.APTPL}
	for _, r := range ff.Registrations {
		k, err := strconv.ParseUint(r.Key, 0, 64)
		if err != nil {
			return bad(fmt.Errorf("key %q of %s: %w", r.Key, r.Initiator, err))
		}
		st.Registrations = append(st.Registrations, scsi.PRRegistration{Initiator: r.Initiator, Key: k, AllTargetPorts: r.AllTargetPorts})
	}
	if r := ff.Reservation; r != nil {
		st.Reservation = &scsi.PRReservation{Holder: r.Holder, Type: r.Type}
	}
	return st, true, nil
}

// Save implements scsi.PRStore: the run file always (a failure is logged:
// only the next process would miss it), the APTPL file when APTPL is on
// (a failure is returned: the initiator asked for it and the command that
// changed the state fails).
func (s *unitStore) Save(st scsi.PRState) error {
	empty := len(st.Registrations) == 0 && st.Reservation == nil
	var data []byte
	if !empty {
		ff := fileFormat{LogicalUnit: s.name, Backing: s.backing, Saved: time.Now().UTC(), Generation: st.Generation, APTPL: st.APTPL,
			Registrations: []registration{}}
		for _, r := range st.Registrations {
			ff.Registrations = append(ff.Registrations, registration{Initiator: r.Initiator, Key: fmt.Sprintf("%#016x", r.Key), AllTargetPorts: r.AllTargetPorts})
		}
		if r := st.Reservation; r != nil {
			ff.Reservation = &reservation{Holder: r.Holder, Type: r.Type, Name: typeNames[r.Type]}
		}
		var err error
		if data, err = json.MarshalIndent(ff, "", "  "); err != nil {
			return fmt.Errorf("prstore: %w", err)
		}
		data = append(data, '\n')
	}
	if s.d.APTPL != "" {
		p := s.path(s.d.APTPL)
		var err error
		if st.APTPL && !empty {
			err = writeFile(p, data, true)
		} else {
			err = remove(p)
		}
		if err != nil {
			return err
		}
	}
	if s.d.Run != "" {
		p := s.path(s.d.Run)
		var err error
		if empty {
			err = remove(p)
		} else {
			err = writeFile(p, data, false)
		}
		if err != nil {
			s.d.Log.Warn("reservation state not kept for the next process", "unit", s.name, "error", err)
		}
	}
	return nil
}

func remove(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("prstore: %w", err)
	}
	return nil
}

// writeFile replaces p atomically (a temporary file renamed over it), with
// fsync of the file and the directory when durable.
func writeFile(p string, data []byte, durable bool) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("prstore: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(p)+".tmp-*")
	if err != nil {
		return fmt.Errorf("prstore: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: ENOENT, ignored
	_, err = tmp.Write(data)
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err == nil && durable {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("prstore: writing %s: %w", p, err)
	}
	return nil
}
