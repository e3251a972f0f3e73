package autoattach_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/libxlgo/xswire"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/autoattach"
	"github.com/govscsi/govscsi/plugin/hold"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
	"github.com/govscsi/govscsi/tests/simpeer"
	"github.com/hashicorp/go-hclog"
)

const (
	wwn0 = "naa.5001405012345678:0"
	wwn1 = "naa.5001405012345678:1"
)

// host is an xsfake server playing a Xen host: dom0 (and optionally a
// driver domain running the backend), the scripted backend peer, guests
// added with addGuest (each with its scripted frontend peer), config
// directories, and the watcher on Debian's libxenstore (two real
// connections: one for its watches, one for the toolstack).
type host struct {
	*rigtest.Host
	t        *testing.T
	beDomid  uint32
	dirs     []string
	outcomes chan autoattach.Outcome
	cleaned  chan []uint32
	logs     *syncBuf
	pending  []autoattach.Outcome // reports read while waiting for another domain
	doms     *xenfake.Domains     // the hypervisor's domain control (holds)
	maxHold  time.Duration        // with hold: the Holder's bound (0: its default)
	hold     bool                 // start the watcher with a Holder

	stop func() // stops the running watcher (nil if none)
}

type syncBuf struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

func newHost(t *testing.T, beDomid uint32) *host {
	t.Helper()
	return newHostOpt(t, beDomid, true)
}

func newHostOpt(t *testing.T, beDomid uint32, withBackend bool) *host {
	t.Helper()
	h := &host{Host: rigtest.NewHost(t), t: t, beDomid: beDomid, outcomes: make(chan autoattach.Outcome, 64),
		cleaned: make(chan []uint32, 64), logs: &syncBuf{}, doms: xenfake.NewDomains()}
	if beDomid != 0 {
		// A driver domain as libxl makes one: its home readable by it.
		h.Mkdir(rigtest.Home(beDomid), xenif.Perms{{Domid: 0, Bits: xenif.PermNone}, {Domid: beDomid, Bits: xenif.PermRead}})
		h.Write(rigtest.Home(beDomid)+"/name", "driver"+strconv.Itoa(int(beDomid)))
		h.Srv.IntroduceDomain(beDomid)
	}
	// The backend peer, connected as the backend domain.
	bs, err := h.Srv.Connect(beDomid)
	if err != nil {
		t.Fatal(err)
	}
	be := &simpeer.Backend{Store: bs, Domid: beDomid, DevErrors: true, Log: t.Logf}
	if withBackend {
		stopBE := simpeer.Start(be.Run)
		t.Cleanup(func() { stopBE() })
	}
	t.Cleanup(func() { bs.Close() })

	d := t.TempDir()
	h.dirs = []string{filepath.Join(d, "xen"), filepath.Join(d, "xen", "auto")}
	for _, x := range h.dirs {
		if err := os.MkdirAll(x, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
	})
	return h
}

// cfg writes an xl config into the first directory (dir 0) or /auto (1).
func (h *host) cfg(dir int, file, body string) string {
	h.t.Helper()
	p := filepath.Join(h.dirs[dir], file)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// guest creates a domain as xl create does (home, name, vm, device dir and
// /libxl/<domid>, in one transaction as libxl__domain_make does), starts
// its frontend peer unless noFE, and introduces it.
func (h *host) guest(domid uint32, name, uuid string, noFE bool) {
	h.t.Helper()
	h.makeDomain(domid, name, uuid)
	if !noFE {
		fs, err := h.Srv.Connect(domid)
		if err != nil {
			h.t.Fatal(err)
		}
		fe := &simpeer.Frontend{Store: fs, Domid: domid, RingRef: "43", EventChannel: "20", Log: h.t.Logf}
		stop := simpeer.Start(fe.Run)
		h.t.Cleanup(func() { stop(); fs.Close() })
	}
	h.Srv.IntroduceDomain(domid)
}

// makeDomain is libxl__domain_make's transaction: home, name, vm, device
// dir and /libxl/<domid>.
func (h *host) makeDomain(domid uint32, name, uuid string) {
	h.t.Helper()
	d := strconv.FormatUint(uint64(domid), 10)
	err := xenif.Transact(h.Admin, 5, func(tx xenif.Tx) error {
		for _, n := range []struct {
			path, value string
			perms       xenif.Perms
		}{
			{rigtest.Home(domid), "", xenif.Perms{{Domid: 0, Bits: xenif.PermNone}, {Domid: domid, Bits: xenif.PermRead}}},
			{rigtest.Home(domid) + "/name", name, nil},
			{rigtest.Home(domid) + "/vm", "/vm/" + uuid, nil},
			{rigtest.Home(domid) + "/device", "", xenif.Perms{{Domid: domid, Bits: xenif.PermNone}, {Domid: 0, Bits: xenif.PermRead}}},
			{"/libxl/" + d, "", rigtest.N0},
		} {
			if n.path == rigtest.Home(domid)+"/vm" && uuid == "" {
				continue
			}
			if err := h.Admin.Write(tx, n.path, n.value); err != nil {
				return err
			}
			if n.perms != nil {
				if err := h.Admin.SetPerms(tx, n.path, n.perms); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// destroy is xl destroy of a domain without vscsi support: the home and
// /libxl/<domid> go, the domain is released; the backend tree stays (P26).
func (h *host) destroy(domid uint32) {
	h.t.Helper()
	for _, p := range []string{rigtest.Home(domid), "/libxl/" + strconv.FormatUint(uint64(domid), 10)} {
		if err := h.Admin.Rm(xenif.NoTx, p); err != nil {
			h.t.Fatal(err)
		}
	}
	h.Srv.ReleaseDomain(domid)
}

// start runs a watcher (on two real libxenstore connections) until stop.
func (h *host) start() {
	h.t.Helper()
	ws, err := xs.Open(0)
	if err != nil {
		h.t.Fatalf("libxenstore against xsfake: %v", err)
	}
	tss, err := xs.Open(0)
	if err != nil {
		h.t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "vscsi-autoattach", Level: hclog.Debug, Output: h.logs})
	ts := plugin.New(tss, plugin.Options{BackendDomid: h.beDomid, Flavour: cfgparse.FlavourKernel, InitTimeout: 10 * time.Second, Logger: log})
	var holder *hold.Holder
	if h.hold {
		if holder, err = hold.New(hold.Config{Control: h.doms, Store: tss, Owner: "vscsi-autoattach", MaxHold: h.maxHold, Logger: log}); err != nil {
			h.t.Fatal(err)
		}
	}
	w := autoattach.New(ws, ts, autoattach.Config{
		ConfigDirs: h.dirs, Logger: log, Holder: holder,
		Report:  func(o autoattach.Outcome) { h.outcomes <- o },
		Cleaned: func(ids []uint32, err error) { h.cleaned <- ids },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("watcher: %v", err)
		}
		ts.Close()
		tss.Close()
		ws.Close()
		h.stop = nil
	}
}

// outcome waits for the watcher's report on domid.
func (h *host) outcome(domid uint32) autoattach.Outcome {
	h.t.Helper()
	for i, o := range h.pending {
		if o.Domid == domid {
			h.pending = append(h.pending[:i], h.pending[i+1:]...)
			return o
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case o := <-h.outcomes:
			if o.Domid == domid {
				return o
			}
			h.pending = append(h.pending, o)
		case <-deadline:
			h.t.Fatalf("no outcome for domain %d; log:\n%s", domid, h.logs.String())
		}
	}
}

// waitCleaned waits for a cleanup pass that removed domid.
func (h *host) waitCleaned(domid uint32) {
	h.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ids := <-h.cleaned:
			for _, id := range ids {
				if id == domid {
					return
				}
			}
		case <-deadline:
			h.t.Fatalf("domain %d never cleaned; log:\n%s", domid, h.logs.String())
		}
	}
}

// vscsiOf is every node of the tree that belongs to domid's vscsi
// devices (backend, frontend, error and toolstack nodes).
func (h *host) vscsiOf(domid uint32) []string {
	d := strconv.FormatUint(uint64(domid), 10)
	var out []string
	for p := range h.Srv.Snapshot() {
		if strings.Contains(p, "/backend/vscsi/"+d) || strings.HasPrefix(p, rigtest.Home(domid)+"/device/vscsi") ||
			strings.HasPrefix(p, "/libxl/"+d+"/vscsi") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (h *host) list(ts *plugin.Toolstack, domid uint32) []plugin.VHostStatus {
	h.t.Helper()
	vs, err := ts.List(domid)
	if err != nil {
		h.t.Fatal(err)
	}
	return vs
}

// adminTS is a toolstack on the admin connection, for reading state.
func (h *host) adminTS() *plugin.Toolstack {
	c, err := h.Srv.Connect(0)
	if err != nil {
		h.t.Fatal(err)
	}
	ts := plugin.New(c, plugin.Options{BackendDomid: h.beDomid})
	h.t.Cleanup(func() { ts.Close(); c.Close() })
	return ts
}

func connected(vs []plugin.VHostStatus, devs int) bool {
	if len(vs) != 1 || vs[0].BackendState != 4 || vs[0].FrontendState != 4 || len(vs[0].Devs) != devs {
		return false
	}
	for _, d := range vs[0].Devs {
		if d.BackendState != 4 || d.FrontendState != 4 {
			return false
		}
	}
	return true
}

const guestCfg = `# a PV guest as xl create starts it
name = "guest5"
memory = 512
vcpus = 1
kernel = "/boot/vmlinuz"
disk = [ 'phy:/dev/vg/guest5,xvda,w' ]
vscsi = [ '` + wwn0 + `,0:0:0:0', '` + wwn1 + `,0:0:1:0' ]
`

// The main flow: a domain started by plain xl create (its config in
// /etc/xen, symlinked from /etc/xen/auto: one config, not two) gets its
// vhost, and both peers reach state 4 for the vhost and both devices.
// When it is destroyed, its trees go (P26).
func TestIntroduceAttachesReleaseCleans(t *testing.T) {
	h := newHost(t, 0)
	p := h.cfg(0, "guest5.cfg", guestCfg)
	if err := os.Symlink(p, filepath.Join(h.dirs[1], "guest5.cfg")); err != nil {
		t.Fatal(err)
	}
	h.cfg(0, "xl.conf", "autoballoon=\"off\"\n")            // no name: not a domain config
	h.cfg(0, "README", "this is not { an xl config\n")      // unparsable: skipped
	h.cfg(0, "other.cfg", "name = \"other\"\nmemory=128\n") // another domain
	h.start()
	h.guest(5, "guest5", "", false)
	o := h.outcome(5)
	if o.Action != autoattach.Attached || o.Added != 2 || o.Config != p {
		t.Fatalf("outcome %+v; log:\n%s", o, h.logs.String())
	}
	ts := h.adminTS()
	if vs := h.list(ts, 5); !connected(vs, 2) || vs[0].Index != 0 {
		t.Fatalf("vhosts after attach: %+v", vs)
	}
	if l := logLine(h.logs.String(), "vscsi devices attached"); !strings.Contains(l, "domid=5") || !strings.Contains(l, "name=guest5") || !strings.Contains(l, "devices=2") {
		t.Errorf("attach log line %q:\n%s", l, h.logs.String())
	}

	h.destroy(5)
	h.waitCleaned(5)
	if left := h.vscsiOf(5); len(left) != 0 {
		t.Errorf("left after release: %v", left)
	}
}

// No config, and two configs for one name: a log line each, nothing
// written. A uuid= in one of two same-named configs decides.
func TestNoConfigAmbiguousUUID(t *testing.T) {
	h := newHost(t, 0)
	h.cfg(0, "twice-a.cfg", "name = \"twice\"\nvscsi = [ '"+wwn0+",0:0:0:0' ]\n")
	h.cfg(1, "twice-b.cfg", "name = \"twice\"\nvscsi = [ '"+wwn1+",0:0:0:0' ]\n")
	const uuid = "4b9c2ad1-6d2e-4a8b-9a11-0123456789ab"
	h.cfg(0, "twin-a.cfg", "name = \"twin\"\nuuid = \"4B9C2AD1-6D2E-4A8B-9A11-0123456789AB\"\nvscsi = [ '"+wwn0+",0:0:0:0' ]\n")
	h.cfg(1, "twin-b.cfg", "name = \"twin\"\nuuid = \"00000000-0000-0000-0000-000000000001\"\nvscsi = [ '"+wwn1+",0:0:0:0' ]\n")
	h.start()

	h.guest(6, "nocfg", "", false)
	if o := h.outcome(6); o.Action != autoattach.NoConfig {
		t.Fatalf("no config: %+v", o)
	}
	h.guest(7, "twice", "", false)
	o := h.outcome(7)
	if o.Action != autoattach.Ambiguous || len(o.Others) != 2 {
		t.Fatalf("two configs: %+v", o)
	}
	h.guest(8, "twin", uuid, false)
	o = h.outcome(8)
	if o.Action != autoattach.Attached || !strings.HasSuffix(o.Config, "twin-a.cfg") {
		t.Fatalf("uuid decides: %+v; log:\n%s", o, h.logs.String())
	}
	if vs := h.list(h.adminTS(), 8); !connected(vs, 1) || vs[0].Devs[0].PDev != wwn0 {
		t.Fatalf("twin: %+v", vs)
	}
	for _, d := range []uint32{6, 7} {
		if left := h.vscsiOf(d); len(left) != 0 {
			t.Errorf("domain %d: written: %v", d, left)
		}
	}
	logs := h.logs.String()
	for _, want := range []string{
		"no xl config with this name in the config directories; no vscsi devices attached:",
		"name=nocfg",
		"several xl configs name this domain; attaching nothing",
		"twice-a.cfg", "twice-b.cfg",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// A bad vscsi= entry: one error line naming the domain and the bad token;
// nothing written; the domain is untouched.
func TestBadVSCSILine(t *testing.T) {
	h := newHost(t, 0)
	h.cfg(0, "bad.cfg", "name = \"bad\"\nvscsi = [ '"+wwn0+",0:0:0:0', '"+wwn1+",0:0:1:0,feature-hots' ]\n")
	h.start()
	before := h.Srv.Dump()
	h.guest(9, "bad", "", false)
	o := h.outcome(9)
	if o.Action != autoattach.BadConfig || o.Err == nil || !strings.Contains(o.Err.Error(), "feature-hots") {
		t.Fatalf("outcome %+v", o)
	}
	if left := h.vscsiOf(9); len(left) != 0 {
		t.Errorf("written: %v", left)
	}
	line := logLine(h.logs.String(), "bad vscsi= entry")
	for _, want := range []string{"[ERROR]", "domid=9", "name=bad", "feature-hots", "bad.cfg"} {
		if !strings.Contains(line, want) {
			t.Errorf("error line %q lacks %q", line, want)
		}
	}
	// Only the domain's own creation (home, /libxl/9) changed the tree;
	// vscsiOf above already checked /libxl/9/vscsi.
	after := h.Srv.Dump()
	for _, l := range strings.Split(after, "\n") {
		if !strings.Contains(before, l) && !strings.HasPrefix(l, rigtest.Home(9)) && !strings.HasPrefix(l, "/libxl") {
			t.Errorf("unexpected node: %s", l)
		}
	}
}

// A restarted watcher reconciles: domains that have their vhosts are left
// alone (no xenstore write at all), gone domains' trees are removed, and
// a domain that appeared while no watcher ran gets its devices.
func TestRestartWritesNothingTwice(t *testing.T) {
	h := newHost(t, 0)
	h.cfg(0, "guest5.cfg", guestCfg)
	h.cfg(0, "g6.cfg", "name = \"g6\"\nvscsi = [ '"+wwn0+",1:0:0:0' ]\n")
	h.cfg(0, "g7.cfg", "name = \"g7\"\nvscsi = [ '"+wwn1+",0:0:0:0' ]\n")
	h.start()
	h.guest(5, "guest5", "", false)
	h.guest(6, "g6", "", false)
	for _, d := range []uint32{5, 6} {
		if o := h.outcome(d); o.Action != autoattach.Attached {
			t.Fatalf("domain %d: %+v", d, o)
		}
	}
	h.stop()
	ts := h.adminTS()
	if vs := h.list(ts, 5); !connected(vs, 2) {
		t.Fatalf("guest5: %+v", vs)
	}
	snap := h.Srv.Dump()

	// Restart over an unchanged host: not one write.
	var writes atomic.Int64
	var what sync.Map
	h.Srv.SetOnRequest(func(domid uint32, m xswire.Msg) {
		switch m.Type {
		case xswire.Write, xswire.Mkdir, xswire.Rm, xswire.SetPerms:
			writes.Add(1)
			what.Store(fmt.Sprintf("%v %q", m.Type, m.Payload), true)
		}
	})
	h.start()
	for _, d := range []uint32{5, 6} {
		if o := h.outcome(d); o.Action != autoattach.HasVHosts {
			t.Fatalf("restart, domain %d: %+v", d, o)
		}
	}
	h.stop()
	if n := writes.Load(); n != 0 {
		what.Range(func(k, _ any) bool { t.Errorf("write after restart: %v", k); return true })
	}
	if got := h.Srv.Dump(); got != snap {
		t.Errorf("tree changed across the restart")
	}
	h.Srv.SetOnRequest(nil)

	// While no watcher runs: g6 is destroyed, g7 starts.
	h.destroy(6)
	h.guest(7, "g7", "", false)
	h.start()
	h.waitCleaned(6)
	if o := h.outcome(7); o.Action != autoattach.Attached {
		t.Fatalf("g7 after restart: %+v", o)
	}
	if o := h.outcome(5); o.Action != autoattach.HasVHosts {
		t.Fatalf("guest5 after restart: %+v", o)
	}
	if left := h.vscsiOf(6); len(left) != 0 {
		t.Errorf("g6 left: %v", left)
	}
	if vs := h.list(ts, 7); !connected(vs, 1) {
		t.Errorf("g7: %+v", vs)
	}
}

// A domain that dies while its vhost waits for the guest's frontend: the
// apply gives up, and nothing of it remains.
func TestDomainGoneMidSetup(t *testing.T) {
	h := newHost(t, 0)
	h.cfg(0, "dying.cfg", "name = \"dying\"\nvscsi = [ '"+wwn0+",0:0:0:0' ]\n")
	h.start()
	h.guest(11, "dying", "", true) // no frontend: the vhost stays in InitWait
	be := "/local/domain/0/backend/vscsi/11/0/state"
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, err := h.Admin.Read(xenif.NoTx, be); err == nil && v == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend never probed; log:\n%s", h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.destroy(11)
	o := h.outcome(11)
	if o.Action != autoattach.Gone {
		t.Fatalf("outcome %+v", o)
	}
	// The rollback or the release cleanup removes everything; wait for
	// the cleanup pass, which follows the release.
	deadline = time.Now().Add(20 * time.Second)
	for len(h.vscsiOf(11)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %v", h.vscsiOf(11))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h.Exists(rigtest.Home(11)) {
		t.Errorf("the domain's home came back")
	}
}

// A domain renamed between the config match and the apply (xl rename):
// the watcher notices, matches again, and applies the new name's config.
func TestRenamedMidSetup(t *testing.T) {
	h := newHost(t, 0)
	h.cfg(0, "old.cfg", "name = \"old\"\nvscsi = [ '"+wwn0+",0:0:0:0' ]\n")
	h.cfg(0, "new.cfg", "name = \"new\"\nvscsi = [ '"+wwn1+",0:0:0:0' ]\n")
	var reads atomic.Int32
	renamer, err := h.Srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	defer renamer.Close()
	h.Srv.SetOnRequest(func(domid uint32, m xswire.Msg) {
		if m.Type == xswire.Read && strings.TrimRight(string(m.Payload), "\x00") == rigtest.Home(12)+"/name" {
			if reads.Add(1) == 2 { // the re-read after the match
				if err := renamer.Write(xenif.NoTx, rigtest.Home(12)+"/name", "new"); err != nil {
					t.Error(err)
				}
			}
		}
	})
	h.start()
	h.guest(12, "old", "", false)
	o := h.outcome(12)
	if o.Action != autoattach.Attached || !strings.HasSuffix(o.Config, "new.cfg") || o.Name != "new" {
		t.Fatalf("outcome %+v; log:\n%s", o, h.logs.String())
	}
	if vs := h.list(h.adminTS(), 12); !connected(vs, 1) || vs[0].Devs[0].PDev != wwn1 {
		t.Fatalf("vhosts: %+v", vs)
	}
	if !strings.Contains(h.logs.String(), "domain renamed while being set up") {
		t.Errorf("no rename log line:\n%s", h.logs.String())
	}
}

// logLine returns the last log line containing s.
func logLine(logs, s string) string {
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			line = l
		}
	}
	return line
}

// Configs that parse but cannot be applied as a whole: a vdev used twice
// on one vhost, a /dev pdev that does not exist. Each gets an error line
// naming the token; nothing is written.
func TestUnappliableConfig(t *testing.T) {
	h := newHost(t, 0)
	h.cfg(0, "dup.cfg", "name = \"dup\"\nvscsi = [ '"+wwn0+",0:0:0:0', '"+wwn1+",0:0:0:0' ]\n")
	h.cfg(0, "nodev.cfg", "name = \"nodev\"\nvscsi = [ '/dev/govscsi-test-no-such-disk,0:0:0:0' ]\n")
	h.start()
	h.guest(13, "dup", "", false)
	h.guest(14, "nodev", "", false)
	for d, tok := range map[uint32]string{13: "vdev 0:0:0 used twice", 14: "/dev/govscsi-test-no-such-disk"} {
		o := h.outcome(d)
		if o.Action != autoattach.BadConfig || o.Err == nil || !strings.Contains(o.Err.Error(), tok) {
			t.Errorf("domain %d: %+v", d, o)
		}
		if left := h.vscsiOf(d); len(left) != 0 {
			t.Errorf("domain %d: written: %v", d, left)
		}
	}
	if l := logLine(h.logs.String(), "name=nodev"); !strings.Contains(l, "[ERROR]") || !strings.Contains(l, "no-such-disk") {
		t.Errorf("error line %q", l)
	}
}

// xl-vscsi create (or apply) racing the watcher for the same domain: the
// other toolstack commits its vhost between the watcher's checks and its
// transaction. The watcher notices the clash, leaves the other's vhost
// alone and reports it; the devices are connected once, not twice.
func TestRaceWithOtherToolstack(t *testing.T) {
	h := newHost(t, 0)
	p := h.cfg(0, "raced.cfg", "name = \"raced\"\nvscsi = [ '"+wwn0+",0:0:0:0' ]\n")
	other, err := h.Srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	ots := plugin.New(other, plugin.Options{Flavour: cfgparse.FlavourKernel, InitTimeout: 10 * time.Second})
	defer func() { ots.Close(); other.Close() }()
	var reads atomic.Int32
	otherErr := make(chan error, 1)
	h.Srv.SetOnRequest(func(domid uint32, m xswire.Msg) {
		if m.Type == xswire.Read && strings.TrimRight(string(m.Payload), "\x00") == rigtest.Home(15)+"/name" {
			if reads.Add(1) == 2 { // the watcher's re-read, just before its Apply
				_, err := ots.Apply(context.Background(), "15", p)
				otherErr <- err
			}
		}
	})
	h.start()
	h.guest(15, "raced", "", false)
	o := h.outcome(15)
	if err := <-otherErr; err != nil {
		t.Fatalf("the other toolstack's apply: %v", err)
	}
	if o.Action != autoattach.HasVHosts {
		t.Fatalf("outcome %+v; log:\n%s", o, h.logs.String())
	}
	if vs := h.list(h.adminTS(), 15); !connected(vs, 1) {
		t.Fatalf("vhosts: %+v", vs)
	}
	if !strings.Contains(h.logs.String(), "another toolstack attached vscsi vhosts meanwhile") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

// A domain seen before its name is written (not libxl's order, but a
// toolstack may do it) is looked at again when the name appears.
func TestUnnamedRetried(t *testing.T) {
	h := newHost(t, 0)
	h.cfg(0, "late.cfg", "name = \"late\"\nvscsi = [ '"+wwn0+",0:0:0:0' ]\n")
	h.start()
	h.Mkdir(rigtest.Home(16), xenif.Perms{{Domid: 0, Bits: xenif.PermNone}, {Domid: 16, Bits: xenif.PermRead}})
	h.Mkdir(rigtest.Home(16)+"/device", xenif.Perms{{Domid: 16, Bits: xenif.PermNone}, {Domid: 0, Bits: xenif.PermRead}})
	h.Srv.IntroduceDomain(16)
	if o := h.outcome(16); o.Action != autoattach.Unnamed {
		t.Fatalf("outcome %+v", o)
	}
	if left := h.vscsiOf(16); len(left) != 0 {
		t.Errorf("written: %v", left)
	}
	h.Write(rigtest.Home(16)+"/name", "late")
	fs, err := h.Srv.Connect(16)
	if err != nil {
		t.Fatal(err)
	}
	stop := simpeer.Start((&simpeer.Frontend{Store: fs, Domid: 16, RingRef: "43", EventChannel: "20"}).Run)
	defer func() { stop(); fs.Close() }()
	if o := h.outcome(16); o.Action != autoattach.Attached {
		t.Fatalf("second look: %+v", o)
	}
}

// xl migrate's incoming domain is "<name>--incoming" until the sender lets
// it go, and xl unpauses it right after renaming it: it is matched as
// <name> and gets its config's devices under the incoming name, before it
// runs; the rename that follows changes nothing.
func TestRenamedAfterNoConfig(t *testing.T) {
	h := newHost(t, 0)
	h.cfg(0, "mig.cfg", "name = \"mig\"\nvscsi = [ '"+wwn0+",0:0:0:0' ]\n")
	h.start()
	h.guest(18, "mig--incoming", "", false)
	if o := h.outcome(18); o.Action != autoattach.Attached || o.Name != "mig--incoming" || !strings.HasSuffix(o.Config, "/mig.cfg") {
		t.Fatalf("incoming: %+v", o)
	}
	if vs := h.list(h.adminTS(), 18); !connected(vs, 1) {
		t.Fatalf("vhosts: %+v", vs)
	}
	before := h.vscsiOf(18)
	h.Write(rigtest.Home(18)+"/name", "mig")
	time.Sleep(100 * time.Millisecond)
	if after := h.vscsiOf(18); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the rename changed the vscsi trees:\n%v\n%v", before, after)
	}
	// A domain without a config that dies: its name watch ends with it
	// (the watcher stops cleanly at the end of the test).
	h.guest(19, "nameless-cfg", "", true)
	if o := h.outcome(19); o.Action != autoattach.NoConfig {
		t.Fatalf("%+v", o)
	}
	h.destroy(19)
	h.destroy(18)
	h.waitCleaned(18)
}
