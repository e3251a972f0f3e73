package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/stats"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/backend/xenbus"
	"github.com/govscsi/govscsi/internal/opfile"
	"github.com/govscsi/govscsi/internal/opfile/opfiletest"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/libxlgo/xsutil"
	"github.com/govscsi/govscsi/tests/simpeer"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.BackendType != "vscsiu" || c.LogLevel != "info" || c.StatsSocket != stats.DefaultSocket ||
		len(c.AllowPaths) != 1 || c.AllowPaths[0] != "/dev/" || c.Domid != nil ||
		c.StateDir != "/run/govscsi" || c.stateDir() != "/run/govscsi/vscsiu" || c.OnStop != "handover" {
		t.Errorf("defaults: %+v", c)
	}
	if c, _ := ParseConfig([]byte("state_dir: none\non_stop: disconnect\ntimeouts: {handover: 3s}")); c.stateDir() != "" ||
		c.OnStop != "disconnect" || c.Timeouts.Handover != 3*time.Second {
		t.Errorf("state_dir none, on_stop disconnect: %+v", c)
	}
	c, err = ParseConfig([]byte(`
backend_type: vscsi-user
domid: 3
log_level: debug
stats_socket: none
allow_paths: [/dev/, /var/lib/govscsi/images/]
max_ram: 1G
max_segments: 256
workers: 4
timeouts:
  teardown: 3s
  remove: 500ms
  shutdown: 2s
  sg_command: 1m
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.BackendType != "vscsi-user" || *c.Domid != 3 || c.Timeouts.Remove != 500*time.Millisecond ||
		c.Timeouts.SGCommand != time.Minute || c.Policy().MaxRAM != 1<<30 || c.MaxSegments != 256 {
		t.Errorf("parsed: %+v", c)
	}
	if c, _ := ParseConfig(nil); c.Reservations.StateDir != "/run/govscsi/pr" || c.Reservations.APTPLDir != "/var/lib/govscsi/pr" {
		t.Errorf("reservation directories: %+v", c.Reservations)
	}
	if p, _ := ParseConfig([]byte("max_ram: \"0\"")); p.Policy().MaxRAM != -1 {
		t.Errorf("max_ram 0 does not disable RAM disks")
	}
	for _, c := range []struct{ yaml, word string }{
		{"backend_typo: x", "backend_typo"},
		{"log_level: loud", "log_level"},
		{"allow_paths: [relative/]", "relative/"},
		{"allow_paths: [/]", "any file"},
		{"allow_paths: [/srv/../etc]", "/srv/../etc"},
		{"max_ram: lots", "max_ram"},
		{"max_segments: 5", "max_segments"},
		{"workers: -1", "workers"},
		{"timeouts: {teardown: -1s}", "teardown"},
		{"timeouts: {remove: soon}", "soon"},
		{"domid: -2", "domid"},
		{"workers: many", "workers"},
		{"timeouts: 5", "timeouts"},
		{"timeouts: {later: 1s}", "timeouts.later"},
		{"timeouts: {handover: -1s}", "handover"},
		{"on_stop: quit", "on_stop"},
		{"state_dir: run/govscsi", "state_dir"},
		{"state_dir: /run/../etc", "state_dir"},
		{"state_dir: /", "state_dir"},
		{"- a\n- b", "top level"},
		// Strict as documented (issue 14: duplicates took the last, a
		// second document was ignored, even one holding a refused
		// allow_paths).
		{"workers: 4\nworkers: 8", "given twice"},
		{"timeouts: {remove: 1s, remove: 2s}", "given twice"},
		{"log_level: info\n---\nallow_paths: [/]\n", "second YAML document"},
		// The daemon's own checks: a type the toolstack cannot write.
		{"backend_type: a/b", "backend_type"},
		{"backend_type: VSCSI", "backend_type"},
		{"stats_socket: /" + strings.Repeat("s", 120), "stats_socket"},
		{"reservations: {state_dir: run/pr}", "reservations.state_dir"},
		{"reservations: {aptpl_dir: /var/lib/../pr}", "reservations.aptpl_dir"},
		{"reservations: {aptpl_dir: /}", "reservations.aptpl_dir"},
		{"reservations: {keep: yes}", "reservations.keep"},
	} {
		_, err := ParseConfig([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.word) {
			t.Errorf("ParseConfig(%q) = %v, want an error naming %q", c.yaml, err, c.word)
		}
	}
}

// FuzzConfigDaemonAgrees: whatever ParseConfig (and so --check-config)
// accepts, the daemon accepts too: server.New does not refuse it (a
// backend_type passed the check and was refused at start).
func FuzzConfigDaemonAgrees(f *testing.F) {
	for _, s := range []string{"", "backend_type: vscsi-user\n", "backend_type: \"a b\"\n", "backend_type: X\n",
		"workers: 3\nmax_segments: 300\n", "stats_socket: none\n", "allow_paths: [/srv/x/]\n",
		"timeouts: {teardown: 1s}\n", "max_ram: 1T\n", "domid: 4294967295\n"} {
		f.Add(s)
	}
	srv := xsfake.StartT(f)
	store, err := srv.Connect(0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := ParseConfig([]byte(text))
		if err != nil {
			return
		}
		if cfg.Domid == nil {
			zero := uint32(0)
			cfg.Domid = &zero // New would read xenstore's domid
		}
		deps := Deps{Store: store, Grants: xenfake.NewGrants(), OpenEvents: func() (xenif.EventChannel, error) { return nil, errors.New("unused") }}
		if _, err := New(cfg, deps); err != nil {
			t.Fatalf("ParseConfig accepts %q, the daemon refuses it: %v", text, err)
		}
	})
}

// TestInitiatorNames: a vhost's I_T nexus is named by its guest's UUID
// (stable across reboots and restarts), or by the domid without one.
func TestInitiatorNames(t *testing.T) {
	srv := xsfake.StartT(t)
	store, err := srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	store.Write(xenif.NoTx, "/local/domain/5/vm", "/vm/5a1f0e2c-7b3d-4c1e-9a8f-0123456789ab")
	store.Write(xenif.NoTx, "/local/domain/6/vm", "/vm/../etc")
	s := &Server{deps: Deps{Store: store}}
	for _, c := range []struct {
		domid uint32
		vhost string
		want  string
	}{
		{5, "0", "vm:5a1f0e2c-7b3d-4c1e-9a8f-0123456789ab/vhost:0"},
		{5, "3", "vm:5a1f0e2c-7b3d-4c1e-9a8f-0123456789ab/vhost:3"},
		{6, "0", "dom:6/vhost:0"},
		{7, "1", "dom:7/vhost:1"},
	} {
		if got := s.initiator(xenbus.LUNRequest{Domid: c.domid, Vhost: c.vhost}); got != c.want {
			t.Errorf("domain %d vhost %s: %q, want %q", c.domid, c.vhost, got, c.want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	if _, err := LoadConfig(missing, false); err != nil {
		t.Errorf("missing default config: %v", err)
	}
	if _, err := LoadConfig(missing, true); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing explicit config: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("workers: many\n"), 0o600)
	if _, err := LoadConfig(bad, true); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad config error does not name the file: %v", err)
	}
}

// TestServerOnLibxenstore runs the whole backend on Debian's libxenstore
// (cgo) against the xsfake server, with xenfake grants and event channels
// and the simpeer frontend: the domid comes from xenstore, a guest writes
// and reads a file LUN through the ring, the stats endpoint reports it,
// and the explicit disconnect (the control socket's stop request) closes
// the vhost.
func TestServerOnLibxenstore(t *testing.T) {
	srv := xsfake.StartT(t)
	store, err := xs.Open(0)
	if err != nil {
		t.Fatalf("libxenstore against xsfake: %v", err)
	}
	defer store.Close()
	ts, err := srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ts.Write(xenif.NoTx, "/local/domain/0/domid", "0"))

	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	must(os.WriteFile(img, make([]byte, 1<<20), 0o600))
	sockDir, err := os.MkdirTemp("", "vb")
	must(err)
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "stats.sock")
	promFile := filepath.Join(dir, "govscsi.prom")
	cfg, err := ParseConfig([]byte(fmt.Sprintf("allow_paths: [%s]\nstats_socket: %s\nstate_dir: %s\ntimeouts: {shutdown: 2s}\n"+
		"metrics: {textfile: %s, interval: 1s, listen: \"127.0.0.1:0\"}\n", dir, sock, t.TempDir(), promFile)))
	must(err)

	grants, hub := xenfake.NewGrants(), xenfake.NewEventHub()
	var evs []*xenfake.EventChannel
	s, err := New(cfg, Deps{Store: store, Grants: grants,
		OpenEvents: func() (xenif.EventChannel, error) {
			ev, err := hub.Open(0)
			evs = append(evs, ev)
			return ev, err
		},
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}})})
	must(err)
	if s.Domid() != 0 {
		t.Errorf("domid %d", s.Domid())
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()

	// The toolstack creates a vhost for dom 5 with one file LUN.
	const domid = 5
	be := "/local/domain/0/backend/vscsiu/5/0"
	fe := "/local/domain/5/device/vscsi/0"
	must(ts.Mkdir(xenif.NoTx, "/local/domain/5"))
	must(ts.SetPerms(xenif.NoTx, "/local/domain/5", xenif.Perms{{Domid: domid}, {Domid: 0, Bits: xenif.PermRead}}))
	srv.IntroduceDomain(domid)
	must(ts.Mkdir(xenif.NoTx, be))
	must(ts.SetPerms(xenif.NoTx, be, xenif.Perms{{Domid: 0}, {Domid: domid, Bits: xenif.PermRead}}))
	must(xenif.Transact(ts, 5, func(tx xenif.Tx) error {
		for p, v := range map[string]string{fe + "/backend": be, fe + "/backend-id": "0", fe + "/state": "1",
			be + "/frontend": fe, be + "/frontend-id": "5", be + "/online": "1", be + "/state": "1",
			be + "/vscsi-devs/dev-0/p-dev": "file:" + img, be + "/vscsi-devs/dev-0/v-dev": "0:0:0:0",
			be + "/vscsi-devs/dev-0/state": "1"} {
			if err := ts.Write(tx, p, v); err != nil {
				return err
			}
		}
		return nil
	}))

	// The guest: a ring page, a port, and the simpeer frontend.
	gstore, err := srv.Connect(domid)
	must(err)
	defer gstore.Close()
	page := make([]byte, vscsiif.PageSize)
	front, err := ring.NewFront(page, vscsiif.RequestSize)
	must(err)
	ref := grants.Grant(domid, page, false)
	g := hub.Guest(domid)
	port := g.AllocUnbound(0)
	fr := &simpeer.Frontend{Store: gstore, Domid: domid, RingRef: strconv.Itoa(int(ref)), EventChannel: strconv.Itoa(int(port))}
	stopFE := simpeer.Start(fr.Run)
	defer stopFE()

	wait := func(p, want string) {
		t.Helper()
		m := xsutil.NewMux(ts)
		defer m.Close()
		wctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		if _, err := xsutil.WaitFor(wctx, m, p, xsutil.Equals(want)); err != nil {
			t.Fatalf("%v\n%s", err, srv.Dump())
		}
	}
	wait(be+"/vscsi-devs/dev-0/state", "4")
	wait(be+"/state", "4")

	// WRITE(10) one page, READ(10) it back.
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(i * 7)
	}
	do := func(rqid uint16, op byte, dir uint8, buf []byte, readonly bool) vscsiif.Response {
		gref := grants.Grant(domid, buf, readonly)
		defer grants.Revoke(gref)
		req := vscsiif.Request{Rqid: rqid, Act: vscsiif.ActSCSICDB, CmdLen: 10, Direction: dir, NrSegments: 1}
		req.CDB[0], req.CDB[5], req.CDB[8] = op, 8, 8 // LBA 8, 8 blocks
		req.Seg[0] = vscsiif.Segment{Gref: gref, Length: 4096}
		req.Encode(front.RequestSlot())
		front.CommitRequest()
		if front.PushRequests() {
			must(g.Notify(port))
		}
		wctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		for front.UnconsumedResponses() == 0 {
			if front.FinalCheckForResponses() {
				break
			}
			must(g.Wait(wctx, port))
		}
		b := make([]byte, vscsiif.ResponseSize)
		front.CopyResponse(b)
		var rsp vscsiif.Response
		vscsiif.DecodeResponse(b, &rsp)
		return rsp
	}
	if rsp := do(1, 0x2a, vscsiif.DMAToDevice, data, true); rsp.Rslt != 0 || rsp.Rqid != 1 {
		t.Fatalf("WRITE: %+v", rsp)
	}
	back := make([]byte, 4096)
	if rsp := do(2, 0x28, vscsiif.DMAFromDevice, back, false); rsp.Rslt != 0 || string(back) != string(data) {
		t.Fatalf("READ: rslt %#x, data equal %v", rsp.Rslt, string(back) == string(data))
	}
	onDisk, _ := os.ReadFile(img)
	if string(onDisk[8*512:8*512+4096]) != string(data) {
		t.Errorf("data not in the image file")
	}

	// The stats endpoint, through the client package.
	snap, err := stats.Fetch(context.Background(), sock)
	must(err)
	if len(snap.LUNs) != 1 || snap.LUNs[0].Writes != 1 || snap.LUNs[0].Reads != 1 || snap.LUNs[0].WriteBytes != 4096 ||
		snap.LUNs[0].Domid != domid || snap.LUNs[0].Addr != "0:0:0" || snap.LUNs[0].LatencyUS.Max <= 0 {
		t.Errorf("stats LUNs: %+v", snap.LUNs)
	}
	if len(snap.Vhosts) != 1 || !snap.Vhosts[0].Connected || snap.Vhosts[0].Requests != 2 {
		t.Errorf("stats vhosts: %+v", snap.Vhosts)
	}
	checkMetrics(t, s, promFile, "file:"+img) // the same numbers, as Prometheus reads them

	// xl-vscsi backend-stop --disconnect: Closing -> the frontend closes
	// -> Closed, all released.
	rep, err := stats.Stop(context.Background(), sock, "disconnect")
	if err != nil || rep.Mode != "disconnect" || rep.Vhosts != 1 || rep.Pid != os.Getpid() {
		t.Fatalf("stop request: %+v, %v", rep, err)
	}
	defer cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if v, _ := ts.Read(xenif.NoTx, be+"/state"); v != "6" {
		t.Errorf("BE state after shutdown %q", v)
	}
	if v, _ := ts.Read(xenif.NoTx, fe+"/state"); v != "6" {
		t.Errorf("FE state after shutdown %q", v)
	}
	if n := grants.Mapped(); n != 0 {
		t.Errorf("%d grants still mapped", n)
	}
	for _, ev := range evs {
		if ev.Bound() != 0 {
			t.Errorf("event channel still bound")
		}
	}
	if _, err := os.Stat(sock); err == nil {
		if _, err := stats.Fetch(context.Background(), sock); err == nil {
			t.Errorf("stats endpoint still answering after shutdown")
		}
	}
	checkMetricsGone(t, s, promFile)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The example shipped next to the unit file must stay valid.
func TestExampleConfigParses(t *testing.T) {
	c, err := LoadConfig("../systemd/vscsi-backend.yaml.example", true)
	if err != nil {
		t.Fatal(err)
	}
	if c.BackendType != "vscsiu" || len(c.AllowPaths) != 2 || c.Timeouts.Teardown != 10*time.Second {
		t.Errorf("example config: %+v", c)
	}
}

func TestDiskID(t *testing.T) {
	a := diskID(xenbus.LUNRequest{Pdev: "ram:1G", Domid: 5, Vhost: "0", Dev: "dev-0"})
	b := diskID(xenbus.LUNRequest{Pdev: "ram:1G", Domid: 5, Vhost: "0", Dev: "dev-1"})
	if a == b {
		t.Errorf("two RAM disks share the identity %q", a)
	}
	f1 := diskID(xenbus.LUNRequest{Pdev: "/dev/sdb", Domid: 5, Vhost: "0", Dev: "dev-0"})
	f2 := diskID(xenbus.LUNRequest{Pdev: "/dev/sdb", Domid: 6, Vhost: "1", Dev: "dev-3"})
	if f1 != f2 {
		t.Errorf("one device has two identities: %q, %q", f1, f2)
	}
}

// TestLoadConfigHostilePaths: a FIFO, /dev/zero, a directory or an
// oversize file as --config is an error at once (a FIFO hung
// vscsi-backend --config/--check-config for ever, /dev/zero grew memory
// until OOM).
func TestLoadConfigHostilePaths(t *testing.T) {
	opfiletest.Check(t, opfile.MaxConfigSize, func(p string) error { _, err := LoadConfig(p, true); return err })
}
