package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// DevStatus is one vscsi-devs/dev-N of a vhost as xenstore has it.
type DevStatus struct {
	ID       int    `json:"dev"`
	PDev     string `json:"p_dev"`
	PDevName string `json:"p_devname,omitempty"`
	VDev     string `json:"v_dev"`
	// BackendState is the backend dev state (0 = missing), FrontendState
	// the frontend's (4: the guest configured the LUN; 6: it failed or was
	// removed; 0: the guest never touched it).
	BackendState  int    `json:"backend_state"`
	FrontendState int    `json:"frontend_state"`
	Error         string `json:"error,omitempty"`
}

// VHostStatus is one vhost of a domain.
type VHostStatus struct {
	Domid        uint32 `json:"domid"`
	VHost        int    `json:"vhost"`
	Index        int    `json:"idx"` // vdev host number, -1 if unknown
	BackendDomid uint32 `json:"backend_domid"`
	// BackendType is the backend type directory serving the vhost:
	// "vscsi" (xen-scsiback) or "vscsiu" (the userspace backend).
	BackendType   string      `json:"backend_type"`
	BackendState  int         `json:"backend_state"`
	FrontendState int         `json:"frontend_state"`
	FeatureHost   bool        `json:"feature_host"`
	Online        bool        `json:"online"`
	NextDev       int         `json:"next_dev"`
	Error         string      `json:"error,omitempty"`
	Devs          []DevStatus `json:"devs"`
}

// List returns the vhosts of a domain, by devid, with their devices by id.
// It reads everything in one transaction, so the picture is consistent.
// Vhosts present only in the frontend tree are listed too (backend state
// 0), so half-removed leftovers show up.
func (t *Toolstack) List(domid uint32) ([]VHostStatus, error) {
	var out []VHostStatus
	err := xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
		var err error
		out, err = t.readVHosts(tx, domid, nil)
		return err
	})
	return out, err
}

// readVHosts reads the vhosts of a domain in tx: the layout of each (ids,
// backend type, idx, feature-host, devices and their addresses), and the
// states (backend, frontend, online, errors, per device) of those whose
// vdev host number withStates accepts (nil: all). A transaction that
// reads a node conflicts with every change of it: the peers write states
// all the time while a vhost connects, so an operation reads only the
// states of the vhosts it may write to, and a vhost of the same domain
// that is connecting meanwhile does not make its commit fail.
func (t *Toolstack) readVHosts(tx xenif.Tx, domid uint32, withStates func(index int) bool) ([]VHostStatus, error) {
	d := t.domains(domid)
	feNames, err := dirOpt(t.s, tx, cfgparse.FrontendRoot(d))
	if err != nil {
		return nil, err
	}
	all := numericNames(feNames, "")
	for _, ty := range t.backendTypes() {
		c := d
		c.Type = ty
		beNames, err := dirOpt(t.s, tx, cfgparse.BackendRoot(c))
		if err != nil {
			return nil, err
		}
		all = append(all, numericNames(beNames, "")...)
	}
	seen := map[int]bool{}
	var ids []int
	for _, id := range all {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	out := []VHostStatus{}
	for _, id := range ids {
		v, err := t.readLayout(tx, domid, id)
		if err == nil && (withStates == nil || withStates(v.Index)) {
			err = t.readStates(tx, &v)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// readLayout reads what the toolstack wrote for a vhost and only it
// changes: backend type, feature-host, idx, the dev-N counter, and each
// device's p-dev, p-devname and v-dev. Index falls back to the host number
// of the first device's v-dev.
func (t *Toolstack) readLayout(tx xenif.Tx, domid uint32, id int) (VHostStatus, error) {
	d := t.vhostDomains(tx, domid, id)
	be := cfgparse.BackendPath(d, id)
	v := VHostStatus{Domid: domid, VHost: id, Index: -1, BackendDomid: d.Backend, BackendType: d.BackendType(), Devs: []DevStatus{}}
	var err error
	rs := func(p string) string {
		if err != nil {
			return ""
		}
		s, e := readOpt(t.s, tx, p)
		err = e
		return s
	}
	v.FeatureHost = rs(be+"/feature-host") == "1"
	if idx, ok, e := readInt(t.s, tx, metaPath(domid, id)+"/idx"); e == nil && ok {
		v.Index = idx
	}
	next, _, _ := readInt(t.s, tx, metaPath(domid, id)+"/next_vscsidev_id")
	names, e := dirOpt(t.s, tx, be+"/vscsi-devs")
	if e != nil {
		return v, e
	}
	for _, n := range numericNames(names, "dev-") {
		dp := be + "/vscsi-devs/dev-" + strconv.Itoa(n)
		dv := DevStatus{ID: n}
		dv.PDev = rs(dp + "/p-dev")
		dv.PDevName = rs(dp + "/p-devname")
		dv.VDev = rs(dp + "/v-dev")
		v.Devs = append(v.Devs, dv)
		if n >= next {
			next = n + 1
		}
		if v.Index < 0 {
			if h, e := cfgparse.ParseHCTL(dv.VDev); e == nil {
				v.Index = int(h.Host)
			}
		}
	}
	v.NextDev = next
	return v, err
}

// readStates adds to a vhost read by readLayout what the peers change:
// backend and frontend state, online, the error nodes, and each device's
// states on both sides and its error node.
func (t *Toolstack) readStates(tx xenif.Tx, v *VHostStatus) error {
	d := t.vhostDomains(tx, v.Domid, v.VHost)
	be, fe := cfgparse.BackendPath(d, v.VHost), cfgparse.FrontendPath(d, v.VHost)
	var err error
	ri := func(p string) int {
		if err != nil {
			return 0
		}
		n, _, e := readInt(t.s, tx, p)
		err = e
		return n
	}
	rs := func(p string) string {
		if err != nil {
			return ""
		}
		s, e := readOpt(t.s, tx, p)
		err = e
		return s
	}
	v.BackendState = ri(be + "/state")
	v.FrontendState = ri(fe + "/state")
	v.Online = rs(be+"/online") == "1"
	v.Error = t.errorNode(tx, v.Domid, v.VHost)
	for i := range v.Devs {
		dv := &v.Devs[i]
		dp := be + "/vscsi-devs/dev-" + strconv.Itoa(dv.ID)
		dv.BackendState = ri(dp + "/state")
		dv.FrontendState = ri(fe + "/vscsi-devs/dev-" + strconv.Itoa(dv.ID) + "/state")
		dv.Error = rs(dp + "/error")
	}
	return err
}

// errorNode returns what the backend reported for a vhost: the xenbus
// error node /local/domain/<be>/error/backend/<type>/<domid>/<vhost>/error
// (xenbus_dev_fatal) or BE/hotplug-error, "" if none.
func (t *Toolstack) errorNode(tx xenif.Tx, domid uint32, vhost int) string {
	d := t.vhostDomains(tx, domid, vhost)
	p := fmt.Sprintf("/local/domain/%d/error/backend/%s/%d/%d/error", d.Backend, d.BackendType(), domid, vhost)
	if s, err := readOpt(t.s, tx, p); err == nil && s != "" {
		return s
	}
	if s, err := readOpt(t.s, tx, cfgparse.BackendPath(d, vhost)+"/hotplug-error"); err == nil && s != "" {
		return s
	}
	return ""
}

// FormatListText writes vhosts as a table, one row per device (a vhost
// without devices gets one row with "-" in the device columns):
//
//	Dom Vhost Type Idx BE-state FE-state Dev   V-dev    BE-dev FE-dev P-dev  P-devname
//
// Type is the backend type serving the vhost (vscsi: xen-scsiback, vscsiu:
// the userspace backend). States are numbers (xenbus states; 0 = missing). The columns are fixed
// and documented in docs/toolstack.md; scripts should prefer --json.
func FormatListText(w io.Writer, vhosts []VHostStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "Dom\tVhost\tType\tIdx\tBE-state\tFE-state\tDev\tV-dev\tBE-dev\tFE-dev\tP-dev\tP-devname")
	idx := func(i int) string {
		if i < 0 {
			return "-"
		}
		return strconv.Itoa(i)
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, v := range vhosts {
		head := fmt.Sprintf("%d\t%d\t%s\t%s\t%d\t%d", v.Domid, v.VHost, dash(v.BackendType), idx(v.Index), v.BackendState, v.FrontendState)
		if len(v.Devs) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\n", head)
		}
		for _, d := range v.Devs {
			fmt.Fprintf(tw, "%s\tdev-%d\t%s\t%d\t%d\t%s\t%s\n", head, d.ID, dash(d.VDev), d.BackendState, d.FrontendState,
				dash(strings.ReplaceAll(d.PDev, " ", "_")), dash(d.PDevName))
		}
	}
	return tw.Flush()
}

// FormatListJSON renders vhosts as an indented JSON array, newline-terminated.
func FormatListJSON(vhosts []VHostStatus) ([]byte, error) {
	if vhosts == nil {
		vhosts = []VHostStatus{}
	}
	b, err := json.MarshalIndent(vhosts, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
