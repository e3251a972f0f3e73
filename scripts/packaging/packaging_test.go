// Package packaging tests `make install`, `make uninstall` and `make deb`
// (scripts/packaging): the installed file list, modes, generated paths,
// that uninstall removes exactly what install put, and the Debian
// package's content, control fields and maintainer scripts (installed and
// purged with the real dpkg into a private root). Skipped with -short: it
// builds everything.
package packaging

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const top = "../.."

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the whole tree; skipped with -short")
	}
	for _, x := range tools {
		if _, err := exec.LookPath(x); err != nil {
			t.Skipf("%s not installed", x)
		}
	}
}

// tree lists everything under root: "path" for files (with mode),
// "path -> target" for symlinks; directories are left out.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel := "/" + strings.TrimPrefix(p, root+"/")
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			m[rel] = "-> " + target
			return nil
		}
		m[rel] = info.Mode().Perm().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+" "+v)
	}
	sort.Strings(out)
	return out
}

// expected is the installed file list for a prefix and lib dir.
func expected(prefix, libdir, unitdir, udevdir string) map[string]string {
	return map[string]string{
		prefix + "/sbin/xl-vscsi":                                 "-rwxr-xr-x",
		prefix + "/sbin/vscsi-autoattach":                         "-rwxr-xr-x",
		libdir + "/libgovscsi.so.0":                               "-rw-r--r--",
		libdir + "/libgovscsi.so":                                 "-> libgovscsi.so.0",
		libdir + "/pkgconfig/govscsi.pc":                          "-rw-r--r--",
		prefix + "/include/govscsi.h":                             "-rw-r--r--",
		unitdir + "/vscsi-autoattach.service":                     "-rw-r--r--",
		"/etc/govscsi/autoattach.yaml":                            "-rw-r--r--",
		prefix + "/share/man/man1/xl-vscsi.1.gz":                  "-rw-r--r--",
		prefix + "/share/man/man5/xl-vscsi.cfg.5.gz":              "-rw-r--r--",
		prefix + "/share/man/man8/vscsi-autoattach.8.gz":          "-rw-r--r--",
		prefix + "/lib/govscsi/vscsi-hotplug":                     "-rwxr-xr-x",
		"/etc/xen/scripts/vscsi-govscsi":                          "-rwxr-xr-x",
		udevdir + "/65-govscsi-vscsi.rules":                       "-rw-r--r--",
		prefix + "/sbin/vscsi-backend":                            "-rwxr-xr-x",
		unitdir + "/vscsi-backend.service":                        "-rw-r--r--",
		prefix + "/share/doc/govscsi/examples/vscsi-backend.yaml": "-rw-r--r--",
		prefix + "/share/man/man8/vscsi-backend.8.gz":             "-rw-r--r--",
	}
}

func diff(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	g, w := strings.Join(keys(got), "\n"), strings.Join(keys(want), "\n")
	if g != w {
		t.Errorf("%s:\n--- got\n%s\n--- want\n%s", what, g, w)
	}
}

func readGz(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstallUninstall(t *testing.T) {
	need(t, "make", "groff", "man", "readelf")
	dest := t.TempDir()
	run(t, "make", "-C", top, "install", "DESTDIR="+dest)
	got := tree(t, dest)
	diff(t, "make install", got, expected("/usr/local", "/usr/local/lib", "/usr/local/lib/systemd/system", "/etc/udev/rules.d"))

	// Generated content points into the install, not the build tree.
	pc, _ := os.ReadFile(dest + "/usr/local/lib/pkgconfig/govscsi.pc")
	if !strings.Contains(string(pc), "libdir=/usr/local/lib\n") || !strings.Contains(string(pc), "includedir=/usr/local/include\n") {
		t.Errorf("govscsi.pc:\n%s", pc)
	}
	unit, _ := os.ReadFile(dest + "/usr/local/lib/systemd/system/vscsi-autoattach.service")
	if !strings.Contains(string(unit), "ExecStart=/usr/local/sbin/vscsi-autoattach --config /etc/govscsi/autoattach.yaml\n") {
		t.Errorf("unit:\n%s", unit)
	}
	unit, _ = os.ReadFile(dest + "/usr/local/lib/systemd/system/vscsi-backend.service")
	if !strings.Contains(string(unit), "ExecStart=/usr/local/sbin/vscsi-backend --config /etc/govscsi/vscsi-backend.yaml") ||
		!strings.Contains(string(unit), "ExecStartPre=-/sbin/modprobe -q xen-gntdev") {
		t.Errorf("backend unit:\n%s", unit)
	}
	wrapper, _ := os.ReadFile(dest + "/etc/xen/scripts/vscsi-govscsi")
	if !strings.Contains(string(wrapper), "bin=${GOVSCSI_HOTPLUG_BIN:-/usr/local/lib/govscsi/vscsi-hotplug}") {
		t.Errorf("the hotplug wrapper does not point at the installed binary:\n%s", wrapper)
	}
	rule, _ := os.ReadFile(dest + "/etc/udev/rules.d/65-govscsi-vscsi.rules")
	if !strings.Contains(string(rule), `RUN+="/etc/xen/scripts/vscsi-govscsi $env{ACTION}"`) {
		t.Errorf("udev rule:\n%s", rule)
	}
	if out := run(t, "readelf", "-d", dest+"/usr/local/lib/libgovscsi.so.0"); !strings.Contains(out, "[libgovscsi.so.0]") {
		t.Errorf("soname:\n%s", out)
	}
	// Each man page renders from its installed .gz.
	for _, m := range []string{"man1/xl-vscsi.1.gz", "man5/xl-vscsi.cfg.5.gz", "man8/vscsi-autoattach.8.gz", "man8/vscsi-backend.8.gz"} {
		out := run(t, "man", "-l", dest+"/usr/local/share/man/"+m)
		if !strings.Contains(out, "NAME") || !strings.Contains(out, "SEE ALSO") {
			t.Errorf("man -l %s:\n%s", m, out)
		}
	}
	if s := readGz(t, dest+"/usr/local/share/man/man5/xl-vscsi.cfg.5.gz"); !strings.Contains(s, "feature\\-host") {
		t.Errorf("xl-vscsi.cfg(5) lacks feature-host")
	}

	// Installing again changes nothing; a locally changed configuration is
	// kept by install and by uninstall.
	run(t, "make", "-C", top, "install", "DESTDIR="+dest)
	diff(t, "second make install", tree(t, dest), got)
	conf := dest + "/etc/govscsi/autoattach.yaml"
	if err := os.WriteFile(conf, []byte("log_level: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, "make", "-C", top, "install", "DESTDIR="+dest)
	if b, _ := os.ReadFile(conf); string(b) != "log_level: debug\n" || !strings.Contains(out, "KEEP    /etc/govscsi/autoattach.yaml") {
		t.Errorf("install overwrote the changed config: %q\n%s", b, out)
	}
	run(t, "make", "-C", top, "uninstall", "DESTDIR="+dest)
	diff(t, "uninstall with a changed config", tree(t, dest), map[string]string{"/etc/govscsi/autoattach.yaml": "-rw-r--r--"})
	os.Remove(conf)
	run(t, "make", "-C", top, "install", "DESTDIR="+dest)
	run(t, "make", "-C", top, "uninstall", "DESTDIR="+dest)
	if ents, _ := os.ReadDir(dest); len(ents) != 0 {
		t.Errorf("left after uninstall: %v", tree(t, dest))
	}

	// A Xen-style prefix.
	run(t, "make", "-C", top, "install", "DESTDIR="+dest, "PREFIX=/usr", "SYSTEMDUNITDIR=/lib/systemd/system")
	diff(t, "make install PREFIX=/usr", tree(t, dest), expected("/usr", "/usr/lib", "/lib/systemd/system", "/lib/udev/rules.d"))
	run(t, "make", "-C", top, "uninstall", "DESTDIR="+dest, "PREFIX=/usr", "SYSTEMDUNITDIR=/lib/systemd/system")
	if ents, _ := os.ReadDir(dest); len(ents) != 0 {
		t.Errorf("left after uninstall PREFIX=/usr: %v", tree(t, dest))
	}
}

func TestDeb(t *testing.T) {
	need(t, "make", "dpkg-deb", "dpkg", "groff")
	out := t.TempDir()
	// A version other than the tree's, built in a build directory of its
	// own: `make deb VERSION=...` must stamp it into every program, the
	// library, the .pc file and the package.
	b, err := os.ReadFile(filepath.Join(top, "internal/version/VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	ver := strings.TrimSpace(string(b)) + "+debtest1"
	run(t, "make", "-C", top, "deb", "DEBOUT="+out, "BUILD="+t.TempDir(), "VERSION="+ver)
	debs, _ := filepath.Glob(out + "/govscsi_*.deb")
	if len(debs) != 1 || filepath.Base(debs[0]) != "govscsi_"+ver+"-1_"+strings.TrimSpace(run(t, "dpkg", "--print-architecture"))+".deb" {
		t.Fatalf("debs: %v, want one of version %s", debs, ver)
	}
	deb := debs[0]

	// Content: make install with Debian's paths, plus the doc files.
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		if f[1] != "root/root" {
			t.Errorf("owner %s: %s", f[1], l)
		}
		p := strings.TrimPrefix(f[5], ".")
		if strings.HasPrefix(f[0], "l") {
			p += " -> " + f[len(f)-1]
		}
		files = append(files, f[0]+" "+p)
	}
	sort.Strings(files)
	ma := strings.TrimSpace(run(t, "dpkg-architecture", "-qDEB_HOST_MULTIARCH"))
	var want []string
	for p, mode := range expected("/usr", "/usr/lib/"+ma, "/lib/systemd/system", "/lib/udev/rules.d") {
		if strings.HasPrefix(mode, "->") {
			want = append(want, "lrwxrwxrwx "+p+" "+mode)
		} else {
			want = append(want, mode+" "+p)
		}
	}
	want = append(want, "-rw-r--r-- /usr/share/doc/govscsi/copyright", "-rw-r--r-- /usr/share/doc/govscsi/changelog.Debian.gz")
	sort.Strings(want)
	if g, w := strings.Join(files, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("dpkg-deb -c:\n--- got\n%s\n--- want\n%s", g, w)
	}

	// Control fields.
	field := func(name string) string {
		return strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, name))
	}
	if v := field("Package"); v != "govscsi" {
		t.Errorf("Package %q", v)
	}
	if v := field("Version"); v != ver+"-1" {
		t.Errorf("Version %q, want %s-1", v, ver)
	}
	if v := field("Architecture"); v != strings.TrimSpace(run(t, "dpkg", "--print-architecture")) {
		t.Errorf("Architecture %q", v)
	}
	dep := field("Depends")
	for _, w := range []string{"libc6 (>=", "libxenstore4 (>=", "libxengnttab1 (>=", "libxenevtchn1 (>=", "xenstore-utils", "init-system-helpers (>= 1.52)"} {
		if !strings.Contains(dep, w) {
			t.Errorf("Depends %q lacks %q", dep, w)
		}
	}
	info := run(t, "dpkg-deb", "-I", deb)
	for _, w := range []string{"conffiles", "postinst", "prerm", "postrm", "triggers", "md5sums", "shlibs"} {
		if !strings.Contains(info, w) {
			t.Errorf("control member %s missing:\n%s", w, info)
		}
	}
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctl)
	// Every file under /etc is a conffile (Debian policy), Xen's script
	// dir included, as in xen-utils-common.
	if b, _ := os.ReadFile(ctl + "/conffiles"); string(b) != "/etc/govscsi/autoattach.yaml\n/etc/xen/scripts/vscsi-govscsi\n" {
		t.Errorf("conffiles %q", b)
	}
	if b, _ := os.ReadFile(ctl + "/triggers"); !strings.Contains(string(b), "activate-noawait ldconfig") {
		t.Errorf("triggers %q", b)
	}
	if b, _ := os.ReadFile(ctl + "/shlibs"); !strings.HasPrefix(string(b), "libgovscsi 0 govscsi (>= ") {
		t.Errorf("shlibs %q", b)
	}

	// The real dpkg installs, removes and purges it in a private root
	// (maintainer scripts run without chroot, with DPKG_ROOT set, so they
	// leave the host's systemd alone).
	root := t.TempDir()
	admin := root + "/var/lib/dpkg"
	for _, d := range []string{admin + "/info", admin + "/updates"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(admin+"/status", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg := func(args ...string) string {
		return run(t, "dpkg", append([]string{"--instdir=" + root, "--admindir=" + admin, "--force-script-chrootless", "--force-depends", "--log=/dev/null"}, args...)...)
	}
	dpkg("-i", deb)
	if _, err := os.Stat(root + "/usr/sbin/vscsi-autoattach"); err != nil {
		t.Errorf("not installed: %v", err)
	}
	for _, p := range []string{"/usr/sbin/xl-vscsi", "/usr/sbin/vscsi-backend", "/usr/sbin/vscsi-autoattach", "/usr/lib/govscsi/vscsi-hotplug"} {
		if got, want := strings.TrimSpace(run(t, root+p, "--version")), filepath.Base(p)+" "+ver; got != want {
			t.Errorf("%s --version: %q, want %q", p, got, want)
		}
	}
	if pc, err := os.ReadFile(root + "/usr/lib/" + ma + "/pkgconfig/govscsi.pc"); err != nil || !strings.Contains(string(pc), "\nVersion: "+ver+"\n") {
		t.Errorf("govscsi.pc (%v) does not say Version: %s:\n%s", err, ver, pc)
	}
	if so, err := os.ReadFile(root + "/usr/lib/" + ma + "/libgovscsi.so.0"); err != nil || !bytes.Contains(so, []byte(ver)) {
		t.Errorf("libgovscsi.so.0 (%v) does not carry the version %s (vscsi_version() is checked by make test-cshared)", err, ver)
	}
	dpkg("-r", "govscsi")
	left := tree(t, root)
	for p := range left {
		if strings.HasPrefix(p, "/var/lib/dpkg/") {
			delete(left, p)
		}
	}
	diff(t, "after dpkg -r (the conffiles stay)", left, map[string]string{
		"/etc/govscsi/autoattach.yaml":   "-rw-r--r--",
		"/etc/xen/scripts/vscsi-govscsi": "-rwxr-xr-x",
	})
	dpkg("-P", "govscsi")
	left = tree(t, root)
	for p := range left {
		if strings.HasPrefix(p, "/var/lib/dpkg/") {
			delete(left, p)
		}
	}
	diff(t, "after dpkg -P", left, map[string]string{})
	for _, d := range []string{"/etc/govscsi", "/etc/xen/scripts", "/usr/lib/govscsi"} {
		if _, err := os.Stat(root + d); err == nil {
			t.Errorf("%s left after purge", d)
		}
	}

	// lintian, where installed: no errors except the placeholder
	// maintainer address (MAINTAINER= sets the real one). Its warnings are
	// logged: no PIE (the Makefile's go build flags) and the library
	// sharing the package with the tools (one package on purpose).
	if _, err := exec.LookPath("lintian"); err == nil {
		b, _ := exec.Command("lintian", "--tag-display-limit", "0",
			"--suppress-tags", "bogus-mail-host,bogus-mail-host-in-debian-changelog", deb).CombinedOutput()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "E: ") {
				t.Errorf("lintian: %s", l)
			}
		}
		t.Logf("lintian:\n%s", b)
	}
}
