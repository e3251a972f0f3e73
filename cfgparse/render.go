package cfgparse

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// This file renders vhosts as the ordered xenstore writes of the vscsiif
// protocol (testdata/vscsi/seed-layout.txt, protocol.md §1.9, §2.3). The
// result is pure data; the plugin applies it (Dir writes first, then the
// nodes in one transaction, as measured on the Xen test ground: protocol.md
// §2.3, "Create a vhost").

// WriteKind tells a directory the writes need from a value node.
type WriteKind int

const (
	// KindNode is a key with a value.
	KindNode WriteKind = iota
	// KindDir is a parent directory to create (value "") and chmod before
	// the nodes are written, so that every node created under it inherits
	// the right permissions and each side can read the other's tree the
	// moment its watch fires.
	KindDir
)

func (k WriteKind) String() string {
	if k == KindDir {
		return "dir"
	}
	return "node"
}

// Write is one xenstore write with the permissions the node must carry.
type Write struct {
	Path  string
	Value string
	Perms xenif.Perms
	Kind  WriteKind
}

// Domains names the two ends of a vscsi connection and the backend type
// directory the backend serves.
type Domains struct {
	Frontend uint32 // the guest
	Backend  uint32 // the domain running the backend (usually 0)
	// Type is the backend type directory, /local/domain/<be>/backend/<Type>
	// ("" means TypeKernel, "vscsi"; the userspace backend serves
	// TypeUserspace, "vscsiu"). The frontend directory is device/vscsi
	// whatever the type: FE/backend carries the full path.
	Type string
}

// BackendType is d.Type, or TypeKernel if empty.
func (d Domains) BackendType() string {
	if d.Type == "" {
		return TypeKernel
	}
	return d.Type
}

// ValidBackendType checks a backend type name: one path component of
// lower-case letters, digits, '-' or '_' (xenbus device types such as
// "vscsi", "vscsiu", "qusb").
func ValidBackendType(t string) error {
	if t == "" || len(t) > 32 {
		return fmt.Errorf("backend type %q: want 1-32 characters", t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("backend type %q: %q is not a lower-case letter, digit, '-' or '_'", t, c)
		}
	}
	return nil
}

// BackendRoot is /local/domain/<be>/backend/<type>/<domid>, the parent of
// a domain's backend vhost directories.
func BackendRoot(d Domains) string {
	return fmt.Sprintf("/local/domain/%d/backend/%s/%d", d.Backend, d.BackendType(), d.Frontend)
}

// FrontendRoot is /local/domain/<domid>/device/vscsi.
func FrontendRoot(d Domains) string {
	return fmt.Sprintf("/local/domain/%d/device/vscsi", d.Frontend)
}

// BackendPath is a vhost's backend directory.
func BackendPath(d Domains, vhost int) string { return BackendRoot(d) + "/" + strconv.Itoa(vhost) }

// FrontendPath is a vhost's frontend directory.
func FrontendPath(d Domains, vhost int) string { return FrontendRoot(d) + "/" + strconv.Itoa(vhost) }

// DevPath is the backend directory of dev-N of a vhost.
func DevPath(d Domains, vhost, dev int) string {
	return BackendPath(d, vhost) + "/vscsi-devs/dev-" + strconv.Itoa(dev)
}

// FrontendPerms: owned by the guest, readable by the backend domain.
func FrontendPerms(d Domains) xenif.Perms {
	return xenif.Perms{{Domid: d.Frontend, Bits: xenif.PermNone}, {Domid: d.Backend, Bits: xenif.PermRead}}
}

// BackendPerms: owned by the backend domain, readable by the guest.
func BackendPerms(d Domains) xenif.Perms {
	return xenif.Perms{{Domid: d.Backend, Bits: xenif.PermNone}, {Domid: d.Frontend, Bits: xenif.PermRead}}
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// RenderCreate returns the writes that create vhosts: the two parent
// directories, then for each vhost its backend tree (feature-host,
// frontend, frontend-id, online, state, then vscsi-devs/dev-N/{p-dev,
// [p-devname], state, v-dev}) followed by its frontend tree (backend,
// backend-id, state), every state "1" as in the seed's create sequence.
// p-devname is written only for devices whose pdev was a /dev path.
func RenderCreate(d Domains, vhosts []VHost) []Write {
	if len(vhosts) == 0 {
		return nil
	}
	bp, fp := BackendPerms(d), FrontendPerms(d)
	w := []Write{
		{Path: FrontendRoot(d), Perms: fp, Kind: KindDir},
		{Path: BackendRoot(d), Perms: bp, Kind: KindDir},
	}
	node := func(path, value string, p xenif.Perms) {
		w = append(w, Write{Path: path, Value: value, Perms: p, Kind: KindNode})
	}
	st := strconv.Itoa(xenif.StateInitialising)
	for _, v := range vhosts {
		be, fe := BackendPath(d, v.DevID), FrontendPath(d, v.DevID)
		node(be+"/feature-host", b01(v.FeatureHost), bp)
		node(be+"/frontend", fe, bp)
		node(be+"/frontend-id", strconv.FormatUint(uint64(d.Frontend), 10), bp)
		node(be+"/online", "1", bp)
		node(be+"/state", st, bp)
		for _, dev := range v.Devs {
			w = append(w, devWrites(d, v.DevID, dev)...)
		}
		node(fe+"/backend", be, fp)
		node(fe+"/backend-id", strconv.FormatUint(uint64(d.Backend), 10), fp)
		node(fe+"/state", st, fp)
	}
	return w
}

func devWrites(d Domains, vhost int, dev VHostDev) []Write {
	bp := BackendPerms(d)
	p := DevPath(d, vhost, dev.ID)
	w := []Write{{Path: p + "/p-dev", Value: dev.PDev, Perms: bp}}
	if dev.PDevName != "" {
		w = append(w, Write{Path: p + "/p-devname", Value: dev.PDevName, Perms: bp})
	}
	return append(w,
		Write{Path: p + "/state", Value: strconv.Itoa(xenif.StateInitialising), Perms: bp},
		Write{Path: p + "/v-dev", Value: dev.VDev.String(), Perms: bp})
}

// RenderHotAdd returns the writes that add devs to a connected vhost: the
// new dev-N nodes, then backend state 7 (Reconfiguring). The nodes come
// first so that, even applied outside a transaction, the backend never
// scans before they exist (protocol.md §2.3, hot-add). For a backend still in
// InitWait (state 2) the caller drops the last write: the nodes are picked
// up when the frontend connects.
func RenderHotAdd(d Domains, vhost int, devs []VHostDev) []Write {
	if len(devs) == 0 {
		return nil
	}
	var w []Write
	for _, dev := range devs {
		w = append(w, devWrites(d, vhost, dev)...)
	}
	return append(w, Write{Path: BackendPath(d, vhost) + "/state", Value: strconv.Itoa(xenif.StateReconfiguring), Perms: BackendPerms(d)})
}

// RenderHotRemove returns the writes that start removing dev-N ids from a
// connected vhost: each dev-N/state 5 (Closing), then backend state 7.
// Afterwards the caller waits for backend state 4 and dev state 6, then
// removes DevPath(d, vhost, id).
func RenderHotRemove(d Domains, vhost int, ids []int) []Write {
	if len(ids) == 0 {
		return nil
	}
	bp := BackendPerms(d)
	var w []Write
	for _, id := range ids {
		w = append(w, Write{Path: DevPath(d, vhost, id) + "/state", Value: strconv.Itoa(xenif.StateClosing), Perms: bp})
	}
	return append(w, Write{Path: BackendPath(d, vhost) + "/state", Value: strconv.Itoa(xenif.StateReconfiguring), Perms: bp})
}

// Render returns all writes of a plan: new vhosts first, then hot-adds.
func (p Plan) Render(d Domains) []Write {
	w := RenderCreate(d, p.Create)
	for _, a := range p.Add {
		w = append(w, RenderHotAdd(d, a.VHost, a.Devs)...)
	}
	return w
}

// FormatText renders the value nodes of ws one per line, `path = "value"`,
// the notation of the vscsiif.h layout notes. Dir writes are left out:
// they carry no value (FormatJSON shows them).
func FormatText(ws []Write) string {
	var sb strings.Builder
	for _, w := range ws {
		if w.Kind != KindNode {
			continue
		}
		sb.WriteString(w.Path)
		sb.WriteString(" = ")
		sb.WriteString(strconv.Quote(w.Value))
		sb.WriteByte('\n')
	}
	return sb.String()
}

// JSONWrite is the JSON form of a Write: perms as xenstore-chmod writes
// them ("n5 r0"), kind "node" or "dir".
type JSONWrite struct {
	Path  string `json:"path"`
	Value string `json:"value"`
	Perms string `json:"perms"`
	Kind  string `json:"kind"`
}

// FormatJSON renders all of ws, in order, as an indented JSON array of
// JSONWrite, newline-terminated.
func FormatJSON(ws []Write) ([]byte, error) {
	list := make([]JSONWrite, 0, len(ws))
	for _, w := range ws {
		list = append(list, JSONWrite{Path: w.Path, Value: w.Value, Perms: w.Perms.String(), Kind: w.Kind.String()})
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
