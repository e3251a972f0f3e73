package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
)

const (
	wwn0 = "naa.5001405012345678:0"
	wwn1 = "naa.5001405012345678:1"
	wwn2 = "naa.5001405012345678:2"
)

func devStates(v plugin.VHostStatus) string {
	var parts []string
	for _, d := range v.Devs {
		parts = append(parts, fmt.Sprintf("dev-%d %s %s %d/%d", d.ID, d.VDev, d.PDev, d.BackendState, d.FrontendState))
	}
	return strings.Join(parts, "; ")
}

// The whole life of a vhost through the real libxenstore: create with
// attach, hot-add, hot-remove (the vhost stays, P13), attach again (a new
// dev id, P29), destroy. Nothing is left afterwards.
func TestAttachDetachDestroy(t *testing.T) {
	r := newRig(t, rigOpt{})
	before := r.vscsiDump()

	res, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if fmt.Sprint(res.Created) != "[0]" || len(res.Added) != 1 || res.Added[0].Dev != 0 {
		t.Fatalf("attach result %+v", res)
	}
	vs := r.list()
	if len(vs) != 1 || vs[0].BackendState != 4 || vs[0].FrontendState != 4 || vs[0].Index != 0 ||
		devStates(vs[0]) != "dev-0 0:0:0:0 "+wwn0+" 4/4" {
		t.Fatalf("after create: %+v", vs)
	}
	if got := r.Read("/local/domain/0/backend/vscsi/5/0/feature-sg-grant"); got != "128" {
		t.Errorf("backend peer did not probe: feature-sg-grant %q", got)
	}

	res, err = r.ts.Attach(ctx(t), "5", wwn1, "0:0:1:0")
	if err != nil {
		t.Fatalf("hot-add: %v", err)
	}
	if len(res.Created) != 0 || len(res.Added) != 1 || res.Added[0].Dev != 1 || res.Added[0].VHost != 0 {
		t.Fatalf("hot-add result %+v", res)
	}
	vs = r.list()
	if devStates(vs[0]) != "dev-0 0:0:0:0 "+wwn0+" 4/4; dev-1 0:0:1:0 "+wwn1+" 4/4" || vs[0].BackendState != 4 {
		t.Fatalf("after hot-add: %+v", vs)
	}

	if _, err := r.ts.Detach(ctx(t), "guest5", "0:0:0:0"); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if r.Exists("/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-0") || r.Exists("/local/domain/5/device/vscsi/0/vscsi-devs/dev-0") {
		t.Errorf("dev-0 nodes left after detach:\n%s", r.vscsiDump())
	}
	if _, err := r.ts.Detach(ctx(t), "guest5", "0:0:1:0"); err != nil {
		t.Fatalf("detach last: %v", err)
	}
	vs = r.list()
	if len(vs) != 1 || len(vs[0].Devs) != 0 || vs[0].BackendState != 4 || vs[0].FrontendState != 4 {
		t.Fatalf("the empty vhost must stay connected (P13): %+v", vs)
	}
	if _, err := r.ts.Detach(ctx(t), "guest5", "0:0:1:0"); !errors.Is(err, plugin.ErrNoDevice) || !strings.Contains(err.Error(), "0:0:1:0 does not exist in domain 5") {
		t.Errorf("detach of a missing device: %v", err)
	}

	res, err = r.ts.Attach(ctx(t), "guest5", wwn2, "0:0:0:0")
	if err != nil {
		t.Fatalf("attach to the empty vhost: %v", err)
	}
	if len(res.Created) != 0 || res.Added[0].Dev != 2 {
		t.Fatalf("ids must not be reused after detach (P29): %+v", res)
	}
	if vs := r.list(); devStates(vs[0]) != "dev-2 0:0:0:0 "+wwn2+" 4/4" {
		t.Fatalf("after re-attach: %+v", vs)
	}

	if _, err := r.ts.DestroyVHost(ctx(t), "guest5", 0); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind after destroy:\n%s\n--- before\n%s", got, before)
	}
	if vs := r.list(); len(vs) != 0 {
		t.Errorf("list after destroy: %+v", vs)
	}
}

// After applying the seed's config (two h:c:t:l devices on vhost 0 of
// domain 5) and letting both peers connect, Debian's xenstore-ls shows the
// seed's layout: the same keys, values and permissions. Differences
// allowed: feature-sg-grant, which Linux's backend writes but the 2015
// notes do not list, and the toolstack-only p-devname, which is only
// written for /dev pdevs.
func TestSeedLayoutXenstoreLs(t *testing.T) {
	if _, err := exec.LookPath("xenstore-ls"); err != nil {
		t.Skip("xenstore-ls not installed (apt-get install xenstore-utils)")
	}
	for _, mode := range []string{"apply", "attach"} {
		t.Run(mode, func(t *testing.T) { testSeedLayout(t, mode) })
	}
}

func testSeedLayout(t *testing.T, mode string) {
	r := newRig(t, rigOpt{opts: plugin.Options{Flavour: cfgparse.FlavourHCTL}})
	if mode == "apply" {
		if _, err := r.ts.Apply(ctx(t), "guest5", "../cfgparse/testdata/vscsi/seed.cfg"); err != nil {
			t.Fatalf("apply seed.cfg: %v", err)
		}
	} else {
		// Create with dev-0, then hot-add dev-1.
		for _, a := range [][2]string{{"8:0:2:1", "0:0:0:0"}, {"8:0:2:2", "0:0:1:0"}} {
			if _, err := r.ts.Attach(ctx(t), "guest5", a[0], a[1]); err != nil {
				t.Fatalf("attach %v: %v", a, err)
			}
		}
	}
	lsOut := func(path string) map[string]string {
		out, err := exec.Command("xenstore-ls", "-f", "-p", path).CombinedOutput()
		if err != nil {
			t.Fatalf("xenstore-ls %s: %v\n%s", path, err, out)
		}
		m := map[string]string{}
		re := regexp.MustCompile(`^(\S+) = "(.*)"\s+\(([a-z0-9,]+)\)$`)
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			mm := re.FindStringSubmatch(l)
			if mm == nil {
				t.Fatalf("xenstore-ls line %q", l)
			}
			if mm[2] == "" && !strings.HasSuffix(mm[1], "state") {
				continue // a directory
			}
			m[strings.TrimPrefix(mm[1], path+"/")] = mm[2] + " (" + mm[3] + ")"
		}
		return m
	}
	gotBE := lsOut("/local/domain/0/backend/vscsi/5/0")
	gotFE := lsOut("/local/domain/5/device/vscsi/0")

	seed, err := os.ReadFile("../cfgparse/testdata/vscsi/seed-layout.txt")
	if err != nil {
		t.Fatal(err)
	}
	kv := regexp.MustCompile(`^\s*\*\s+(<domid>/<vhost>/|<vhost>/)(\S+) = "([^"]*)"`)
	wantBE, wantFE := map[string]string{}, map[string]string{}
	subst := strings.NewReplacer("<domid>", "5", "<vhost>", "0", "<backend_domid>", "0")
	for _, line := range strings.Split(string(seed), "\n") {
		if strings.Contains(line, "Backend/frontend protocol") {
			break
		}
		m := kv.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key, val := m[2], subst.Replace(m[3])
		if strings.HasSuffix(key, "p-devname") {
			continue
		}
		if strings.HasPrefix(val, "8:0:2:1 or") {
			val = "8:0:2:1"
		}
		if m[1] == "<vhost>/" {
			wantFE[key] = val + " (n5,r0)"
		} else {
			wantBE[key] = val + " (n0,r5)"
		}
	}
	if len(wantBE) != 11 || len(wantFE) != 7 {
		t.Fatalf("seed parse: %d backend, %d frontend keys", len(wantBE), len(wantFE))
	}
	wantBE["feature-sg-grant"] = "128 (n0,r5)"
	cmp := func(side string, got, want map[string]string) {
		var keys []string
		for k := range want {
			keys = append(keys, k)
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if got[k] != want[k] {
				t.Errorf("%s %s: xenstore-ls has %q, the seed %q", side, k, got[k], want[k])
			}
		}
	}
	cmp("backend", gotBE, wantBE)
	cmp("frontend", gotFE, wantFE)
}

// An unresolvable p-dev: the backend sets the device to 6; the attach
// fails naming the p-dev and the backend's words, and nothing is left.
func TestUnresolvablePDev(t *testing.T) {
	r := newRig(t, rigOpt{resolvable: func(p string) bool { return p != wwn2 }})
	before := r.vscsiDump()
	_, err := r.ts.Attach(ctx(t), "guest5", wwn2, "0:0:0:0")
	var de *plugin.DeviceError
	if !errors.As(err, &de) || de.Side != "backend" || de.PDev != wwn2 || !strings.Contains(err.Error(), `"`+wwn2+`"`) ||
		!strings.Contains(err.Error(), "not found") {
		t.Fatalf("attach of an unresolvable p-dev: %v", err)
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind after a failed create:\n%s", got)
	}

	// The same on a hot-add: the good device stays, the bad one goes.
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	_, err = r.ts.Attach(ctx(t), "guest5", wwn2, "0:0:1:0")
	if !errors.As(err, &de) || de.Dev != 1 {
		t.Fatalf("hot-add of an unresolvable p-dev: %v", err)
	}
	vs := r.list()
	if devStates(vs[0]) != "dev-0 0:0:0:0 "+wwn0+" 4/4" || vs[0].BackendState != 4 {
		t.Errorf("after the failed hot-add: %+v\n%s", vs, r.vscsiDump())
	}
	if vs[0].NextDev != 2 {
		t.Errorf("next dev id %d, want 2 (ids are not reused)", vs[0].NextDev)
	}
}

// The guest refuses the LUN (frontend dev state 6): reported, rolled back.
func TestFrontendRefusesDevice(t *testing.T) {
	r := newRig(t, rigOpt{failAdd: func(v string) bool { return v == "0:0:3:0" }})
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	_, err := r.ts.Attach(ctx(t), "guest5", wwn1, "0:0:3:0")
	var de *plugin.DeviceError
	if !errors.As(err, &de) || de.Side != "frontend" || !strings.Contains(err.Error(), "scan=none") {
		t.Fatalf("attach refused by the guest: %v", err)
	}
	vs := r.list()
	if devStates(vs[0]) != "dev-0 0:0:0:0 "+wwn0+" 4/4" {
		t.Errorf("after rollback: %+v\n%s", vs, r.vscsiDump())
	}
}

// No frontend (xen-scsifront not loaded): the create times out with a
// message that says so, and everything written is removed again.
func TestFrontendNeverConnects(t *testing.T) {
	r := newRig(t, rigOpt{noFrontend: true, opts: plugin.Options{InitTimeout: 300 * time.Millisecond, DestroyTimeout: 300 * time.Millisecond}})
	before := r.vscsiDump()
	start := time.Now()
	_, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if !errors.Is(err, plugin.ErrTimeout) || !strings.Contains(err.Error(), "xen-scsifront") || !strings.Contains(err.Error(), "backend state 2") {
		t.Fatalf("attach without a frontend: %v", err)
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind after the timeout:\n%s", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("rollback took %v", d)
	}
}

// The guest vanishes while the (slow) backend is connecting: the attach
// fails promptly saying so, and the backend tree is removed (the frontend
// tree went with the domain).
func TestGuestDisappears(t *testing.T) {
	r := newRig(t, rigOpt{beDelay: 150 * time.Millisecond, opts: plugin.Options{DestroyTimeout: 500 * time.Millisecond}})
	before := r.vscsiDump()
	go func() {
		for !r.Exists("/local/domain/0/backend/vscsi/5/0/feature-sg-grant") {
			time.Sleep(5 * time.Millisecond)
		}
		r.Srv.ReleaseDomain(guest)
		r.Admin.Rm(xenif.NoTx, "/local/domain/5")
	}()
	_, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if err == nil || !strings.Contains(err.Error(), "disappeared") {
		t.Fatalf("attach while the guest goes away: %v", err)
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind:\n%s", got)
	}
}

// Two attaches race on one vhost, from two processes' worth of
// connections (two libxenstore handles, two Toolstacks) and from one
// Toolstack: all succeed with distinct dev ids.
func TestRacingAttaches(t *testing.T) {
	r := newRig(t, rigOpt{})
	ts2 := r.otherToolstack()

	// Both create vdev host 0 at once: one creates, the other hot-adds.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	specs := [][2]string{{wwn0, "0:0:0:0"}, {wwn1, "0:0:1:0"}, {wwn2, "0:0:2:0"}, {"naa.5001405012345678:3", "0:0:3:0"}}
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := r.ts
			if i%2 == 1 {
				ts = ts2
			}
			_, errs[i] = ts.Attach(ctx(t), "guest5", s[0], s[1])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("attach %v: %v", specs[i], err)
		}
	}
	vs := r.list()
	if len(vs) != 1 {
		t.Fatalf("want one vhost, got %+v", vs)
	}
	ids := map[int]bool{}
	for _, d := range vs[0].Devs {
		if ids[d.ID] {
			t.Errorf("dev id %d twice", d.ID)
		}
		ids[d.ID] = true
	}
	// A device added while the vhost was still in InitWait connects with
	// it; by now every device is connected on both sides.
	if len(vs[0].Devs) != 4 || strings.Count(devStates(vs[0]), " 4/4") != 4 {
		t.Errorf("after the race: %+v", devStates(vs[0]))
	}
}

// An attach commits while another vhost of the same domain keeps changing
// (its peers write states all the while it connects): the attach's
// transaction reads the states of the vhosts it may write to only, so the
// other vhost's churn does not conflict it. When it read every vhost's
// states it ran out of its 20 attempts here at once, and
// TestWatchStatesConcurrentOperations failed so under load.
func TestAttachNotConflictedByAnotherVHostsStates(t *testing.T) {
	r := newRig(t, rigOpt{})
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	vs := r.list()
	if len(vs) != 1 || len(vs[0].Devs) != 1 {
		t.Fatalf("after the first attach: %+v", vs)
	}
	// The frontend's dev state of vhost 0, rewritten (same value) as fast
	// as one connection can: every write is a change to a reader's
	// transaction, as the peers' state writes are.
	churn := fmt.Sprintf("%s/device/vscsi/%d/vscsi-devs/dev-%d/state", rigtest.Home(guest), vs[0].VHost, vs[0].Devs[0].ID)
	c, err := r.Srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c.Write(xenif.NoTx, churn, "4") != nil {
				return
			}
			n++
		}
	}()
	_, err = r.ts.Attach(ctx(t), "guest5", wwn1, "1:0:0:0")
	close(stop)
	n := <-done
	if err != nil {
		t.Fatalf("attach to a new vhost while vhost %d's states changed (%d writes): %v", vs[0].VHost, n, err)
	}
	if n < 100 {
		t.Fatalf("only %d writes while the attach ran: the churn proves nothing", n)
	}
	t.Logf("%d state writes on vhost %d while the attach ran", n, vs[0].VHost)
}

// Backend trees of domains that are gone are cleaned up (P26).
func TestCleanup(t *testing.T) {
	r := newRig(t, rigOpt{})
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	// Domain 9 died without anyone removing its backend tree.
	r.Write("/local/domain/0/backend/vscsi/9/0/state", "6")
	r.Write("/local/domain/0/error/backend/vscsi/9/0/error", "x")
	r.Write("/libxl/9/vscsi/0/next_vscsidev_id", "1")
	ids, err := r.ts.Cleanup()
	if err != nil || fmt.Sprint(ids) != "[9]" {
		t.Fatalf("cleanup: %v %v", ids, err)
	}
	for _, p := range []string{"/local/domain/0/backend/vscsi/9", "/local/domain/0/error/backend/vscsi/9", "/libxl/9"} {
		if r.Exists(p) {
			t.Errorf("%s left", p)
		}
	}
	if !r.Exists("/local/domain/0/backend/vscsi/5/0/state") {
		t.Errorf("the live domain's tree was removed")
	}
}

// Domains are found by name or id; missing and ambiguous names are errors.
func TestDomainLookup(t *testing.T) {
	r := newRig(t, rigOpt{})
	for in, want := range map[string]uint32{"guest5": 5, "5": 5, "Domain-0": 0, "0": 0} {
		if got, err := r.ts.DomainID(in); err != nil || got != want {
			t.Errorf("DomainID(%q) = %d, %v", in, got, err)
		}
	}
	r.Write("/local/domain/7/name", "twin")
	r.Write("/local/domain/8/name", "twin")
	if _, err := r.ts.DomainID("twin"); !errors.Is(err, plugin.ErrAmbiguousDomain) || !strings.Contains(err.Error(), "[7 8]") {
		t.Errorf("ambiguous: %v", err)
	}
	for _, in := range []string{"nosuch", "6", "32752", ""} {
		if _, err := r.ts.DomainID(in); !errors.Is(err, plugin.ErrNoDomain) {
			t.Errorf("DomainID(%q): %v", in, err)
		}
	}
}

// Dry runs compute the writes and touch nothing.
func TestDryRun(t *testing.T) {
	r := newRig(t, rigOpt{})
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	before := r.Srv.Dump()
	dry := plugin.New(r.store, plugin.Options{DryRun: true})
	defer dry.Close()
	res, err := dry.Attach(ctx(t), "guest5", wwn1, "0:0:1:0")
	if err != nil {
		t.Fatal(err)
	}
	text := cfgparse.FormatText(res.Writes)
	for _, want := range []string{
		`/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-1/p-dev = "` + wwn1 + `"`,
		`/local/domain/0/backend/vscsi/5/0/state = "7"`,
		`/libxl/5/vscsi/0/next_vscsidev_id = "2"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("dry-run hot-add writes lack %s:\n%s", want, text)
		}
	}
	res, err = dry.Detach(ctx(t), "guest5", "0:0:0:0")
	if err != nil || !strings.Contains(cfgparse.FormatText(res.Writes), `dev-0/state = "5"`) {
		t.Errorf("dry-run detach: %v %s", err, cfgparse.FormatText(res.Writes))
	}
	res, err = dry.DestroyVHost(ctx(t), "guest5", 0)
	if err != nil || len(res.Removes) != 3 {
		t.Errorf("dry-run destroy: %v %+v", err, res)
	}
	if after := r.Srv.Dump(); after != before {
		t.Errorf("dry run changed xenstore")
	}
}

// The hotplug script runs after InitWait with libxl's environment, and a
// failing script fails (and rolls back) the attach.
func TestHotplugScript(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	script := filepath.Join(dir, "vscsi-hotplug")
	body := fmt.Sprintf("#!/bin/sh\necho \"$1 $XENBUS_TYPE $XENBUS_PATH $XENBUS_BASE_PATH\" >> %s\n[ -e %s/fail ] && { echo failing >&2; exit 1; }\nexit 0\n", envFile, dir)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	r := newRig(t, rigOpt{opts: plugin.Options{HotplugScript: script, HotplugLog: &syncWriter{w: &log}}})
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ts.DestroyVHost(ctx(t), "guest5", 0); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(envFile)
	if want := "add vscsi backend/vscsi/5/0 backend\nremove vscsi backend/vscsi/5/0 backend\n"; string(got) != want {
		t.Errorf("script runs:\n%s\nwant\n%s", got, want)
	}
	os.WriteFile(filepath.Join(dir, "fail"), nil, 0o644)
	before := r.vscsiDump()
	_, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if err == nil || !strings.Contains(err.Error(), "hotplug script") {
		t.Fatalf("attach with a failing script: %v", err)
	}
	if !strings.Contains(log.String(), "failing") {
		t.Errorf("script stderr not logged: %q", log.String())
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind:\n%s", got)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// List output: the text table and JSON.
func TestListFormats(t *testing.T) {
	r := newRig(t, rigOpt{})
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	vs := r.list()
	var sb strings.Builder
	if err := plugin.FormatListText(&sb, vs); err != nil {
		t.Fatal(err)
	}
	want := "Dom Vhost Type  Idx BE-state FE-state Dev   V-dev   BE-dev FE-dev P-dev                  P-devname\n" +
		"5   0     vscsi 0   4        4        dev-0 0:0:0:0 4      4      " + wwn0 + " -\n"
	if sb.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", sb.String(), want)
	}
	j, err := plugin.FormatListJSON(vs)
	if err != nil || !strings.Contains(string(j), `"p_dev": "`+wwn0+`"`) || !strings.Contains(string(j), `"frontend_state": 4`) ||
		!strings.Contains(string(j), `"backend_type": "vscsi"`) {
		t.Errorf("json: %v\n%s", err, j)
	}
}

func TestOptionsYAML(t *testing.T) {
	o, c, err := plugin.ParseOptionsYAML("backend_domid: 3\nflavour: hctl\ntimeout: 2s\nhotplug_timeout: 5s\n")
	if err != nil || c != nil || o.BackendDomid != 3 || o.Flavour != cfgparse.FlavourHCTL || o.InitTimeout != 2*time.Second ||
		o.DestroyTimeout != 2*time.Second || o.HotplugTimeout != 5*time.Second {
		t.Errorf("%+v %v", o, err)
	}
	for in, want := range map[string]string{
		"flavour: pvops\n":    `"pvops"`,
		"timeout: soon\n":     `"soon"`,
		"backend_domd: 1\n":   "backend_domd",
		"log_level: chatty":   `"chatty"`,
		"backend_domid: -1":   "-1",
		"init_timeout: -1s\n": `"-1s"`,
		// Strict (issue 14): a key twice, a second document.
		"timeout: 1s\ntimeout: 2s\n":        "given twice",
		"timeout: 1s\n---\nflavour: hctl\n": "second YAML document",
	} {
		if _, _, err := plugin.ParseOptionsYAML(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseOptionsYAML(%q): %v, want an error naming %s", in, err, want)
		}
	}
	if o, _, err := plugin.ParseOptionsYAML(""); err != nil || o.BackendDomid != 0 {
		t.Errorf("empty options: %v", err)
	}
}

// A FIFO as hotplug_log with no reader is an error, not an open(2) that
// waits for a reader for ever.
func TestOptionsHotplugLogFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, c, err := plugin.ParseOptionsYAML("hotplug_log: " + fifo + "\n")
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "hotplug_log") {
			t.Errorf("FIFO hotplug_log: %v", err)
		}
	case <-time.After(10 * time.Second):
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			defer f.Close()
			<-done
		}
		t.Fatalf("ParseOptionsYAML hangs opening a FIFO hotplug_log")
	}
}

var _ = xenif.NoTx

// A failing script's hotplug-error (written with the real xenstore-write
// through the relative XENBUS_PATH) is part of the error; a hung script is
// killed after the hotplug timeout.
func TestHotplugScriptErrorAndTimeout(t *testing.T) {
	if _, err := exec.LookPath("xenstore-write"); err != nil {
		t.Skip("xenstore-utils not installed")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "vscsi-hotplug")
	body := "#!/bin/sh\n[ \"$1\" = add ] || exit 0\nif [ -e " + dir + "/hang ]; then exec sleep 30; fi\n" +
		"xenstore-write \"$XENBUS_PATH/hotplug-error\" \"no LIO port for naa.x\" \"$XENBUS_PATH/hotplug-status\" error\nexit 1\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, rigOpt{opts: plugin.Options{HotplugScript: script, HotplugTimeout: 300 * time.Millisecond}})
	before := r.vscsiDump()
	_, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if err == nil || !strings.Contains(err.Error(), "no LIO port for naa.x") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("attach with a failing script: %v", err)
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind:\n%s", got)
	}
	os.WriteFile(filepath.Join(dir, "hang"), nil, 0o644)
	start := time.Now()
	_, err = r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if !errors.Is(err, plugin.ErrTimeout) || time.Since(start) > 10*time.Second {
		t.Fatalf("attach with a hanging script: %v after %v", err, time.Since(start))
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind:\n%s", got)
	}
}

// A device attached while the vhost waits in InitWait (no frontend yet) is
// written without Reconfiguring and connects together with the vhost.
func TestHotAddInInitWait(t *testing.T) {
	r := newRig(t, rigOpt{noFrontend: true})
	first := make(chan error, 1)
	go func() {
		_, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
		first <- err
	}()
	for r.read2("/local/domain/0/backend/vscsi/5/0/state") != "2" {
		time.Sleep(5 * time.Millisecond)
	}
	ts2 := r.otherToolstack()
	res, err := ts2.Attach(ctx(t), "guest5", wwn1, "0:0:1:0")
	if err != nil || !res.Pending || len(res.Created) != 0 {
		t.Fatalf("hot-add in InitWait: %+v %v", res, err)
	}
	for _, w := range res.Writes {
		if strings.HasSuffix(w.Path, "/0/state") {
			t.Errorf("InitWait hot-add wrote %s = %s", w.Path, w.Value)
		}
	}
	r.startFrontend() // scsifront loads: both devices connect with the vhost
	if err := <-first; err != nil {
		t.Fatalf("first attach: %v", err)
	}
	if got := devStates(r.list()[0]); got != "dev-0 0:0:0:0 "+wwn0+" 4/4; dev-1 0:0:1:0 "+wwn1+" 4/4" {
		t.Errorf("after connect: %s", got)
	}
}

func (r *rig) read2(p string) string {
	v, _ := r.Admin.Read(xenif.NoTx, p)
	return v
}

// A frontend that stops answering (hung guest): a hot-add times out and is
// rolled back (the new device's nodes gone, backend state back to 4); a
// detach times out and leaves the device attached with its state restored;
// destroy-vhost falls back to the forced path and removes everything.
func TestHungFrontend(t *testing.T) {
	r := newRig(t, rigOpt{opts: plugin.Options{InitTimeout: 300 * time.Millisecond, DestroyTimeout: 300 * time.Millisecond}})
	before := r.vscsiDump()
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	r.stopFE()

	_, err := r.ts.Attach(ctx(t), "guest5", wwn1, "0:0:1:0")
	if !errors.Is(err, plugin.ErrTimeout) {
		t.Fatalf("hot-add with a hung frontend: %v", err)
	}
	vs := r.list()
	if devStates(vs[0]) != "dev-0 0:0:0:0 "+wwn0+" 4/4" || vs[0].BackendState != 4 || r.Exists("/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-1") {
		t.Errorf("after the hot-add rollback: %+v\n%s", vs, r.vscsiDump())
	}

	_, err = r.ts.Detach(ctx(t), "guest5", "0:0:0:0")
	if !errors.Is(err, plugin.ErrTimeout) || !strings.Contains(err.Error(), "left attached") {
		t.Fatalf("detach with a hung frontend: %v", err)
	}
	vs = r.list()
	if devStates(vs[0]) != "dev-0 0:0:0:0 "+wwn0+" 4/4" || vs[0].BackendState != 4 {
		t.Errorf("after the detach timeout: %+v", vs)
	}

	if _, err := r.ts.DestroyVHost(ctx(t), "guest5", 0); err != nil {
		t.Fatalf("destroy with a hung frontend: %v", err)
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind after the forced destroy:\n%s", got)
	}
}

// CleanupOnRelease removes a dead guest's backend tree when xenstored
// fires @releaseDomain (what `xl destroy` leaves behind, P26).
func TestCleanupOnRelease(t *testing.T) {
	r := newRig(t, rigOpt{})
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	reports := make(chan []uint32, 4)
	done := make(chan error, 1)
	go func() {
		done <- r.ts.CleanupOnRelease(c, func(ids []uint32, err error) {
			if err != nil {
				t.Errorf("cleanup pass: %v", err)
			}
			reports <- ids
		})
	}()
	// xl destroy: the guest's own tree goes, the domain is released.
	r.Admin.Rm(xenif.NoTx, "/local/domain/5")
	r.Admin.Rm(xenif.NoTx, "/libxl/5/device")
	r.Srv.ReleaseDomain(guest)
	select {
	case ids := <-reports:
		if fmt.Sprint(ids) != "[5]" {
			t.Errorf("cleaned %v", ids)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no cleanup after @releaseDomain")
	}
	if r.Exists("/local/domain/0/backend/vscsi/5") || r.Exists("/libxl/5") {
		t.Errorf("left behind:\n%s", r.vscsiDump())
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// BenchmarkAttachDetach: one hot-add and one hot-remove on a connected
// vhost, through the real libxenstore, with both scripted peers reacting
// (the whole 7/8 state round trip, twice).
func BenchmarkAttachDetach(b *testing.B) {
	r := newRig(b, rigOpt{})
	if _, err := r.ts.Attach(context.Background(), "guest5", wwn0, "0:0:0:0"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.ts.Attach(context.Background(), "guest5", wwn1, "0:0:1:0"); err != nil {
			b.Fatal(err)
		}
		if _, err := r.ts.Detach(context.Background(), "guest5", "0:0:1:0"); err != nil {
			b.Fatal(err)
		}
	}
}

// No backend running: the create times out saying so, and since nobody
// probed the vhost, the rollback removes it without waiting.
func TestNoBackend(t *testing.T) {
	r := newRig(t, rigOpt{noBackend: true, opts: plugin.Options{InitTimeout: 300 * time.Millisecond, DestroyTimeout: 5 * time.Second}})
	before := r.vscsiDump()
	start := time.Now()
	_, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if !errors.Is(err, plugin.ErrTimeout) || !strings.Contains(err.Error(), "is the vscsi backend running?") {
		t.Fatalf("attach without a backend: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("rollback waited for a backend that never probed: %v", d)
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind:\n%s", got)
	}
}
