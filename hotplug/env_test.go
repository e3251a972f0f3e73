package hotplug_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/hotplug"
	"github.com/govscsi/govscsi/internal/opfile"
	"github.com/govscsi/govscsi/internal/opfile/opfiletest"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// The ways the script is called: libxl/xl-vscsi (argument + XENBUS_*),
// udev (ACTION, no argument), NAME=value arguments as Xen's findCommand
// takes them, absolute paths.
func TestParseInvocation(t *testing.T) {
	libxl := map[string]string{"XENBUS_TYPE": "vscsi", "XENBUS_PATH": "backend/vscsi/5/2", "XENBUS_BASE_PATH": "backend"}
	inv, err := hotplug.ParseInvocation([]string{"add"}, envOf(libxl))
	if err != nil || inv.Action != "add" || inv.Backend != (hotplug.BackendRef{Type: "vscsi", Domid: 5, DevID: 2}) || inv.UdevCall {
		t.Errorf("libxl: %+v %v", inv, err)
	}
	if inv.Backend.Path() != "backend/vscsi/5/2" {
		t.Errorf("Path %q", inv.Backend.Path())
	}
	udev := map[string]string{"ACTION": "remove", "UDEV_CALL": "1", "XENBUS_TYPE": "vscsi", "XENBUS_PATH": "backend/vscsi/12/0",
		"XENBUS_BASE_PATH": "backend", "SUBSYSTEM": "xen-backend", "DEVPATH": "/devices/vscsi-12-0"}
	inv, err = hotplug.ParseInvocation(nil, envOf(udev))
	if err != nil || inv.Action != "remove" || !inv.UdevCall || inv.Backend.Domid != 12 {
		t.Errorf("udev: %+v %v", inv, err)
	}
	// The argument wins over ACTION (the rule passes $env{ACTION} anyway).
	if inv, _ := hotplug.ParseInvocation([]string{"add"}, envOf(udev)); inv.Action != "add" {
		t.Errorf("argument vs ACTION: %q", inv.Action)
	}
	inv, err = hotplug.ParseInvocation([]string{"XENBUS_PATH=/local/domain/3/backend/vscsi/7/1", "add", "extra"}, envOf(nil))
	if err != nil || inv.Backend != (hotplug.BackendRef{Home: "/local/domain/3", Type: "vscsi", Domid: 7, DevID: 1}) ||
		inv.Backend.Path() != "/local/domain/3/backend/vscsi/7/1" {
		t.Errorf("NAME=value argument: %+v %v", inv, err)
	}
	// govscsi's userspace backend: XENBUS_TYPE=vscsiu and the path under
	// backend/vscsiu, as plugin.HotplugEnvType passes them; the type may
	// also come from the path alone, and any valid type name is accepted
	// (--backend-type).
	usp := map[string]string{"XENBUS_TYPE": "vscsiu", "XENBUS_PATH": "backend/vscsiu/5/1", "XENBUS_BASE_PATH": "backend"}
	inv, err = hotplug.ParseInvocation([]string{"add"}, envOf(usp))
	if err != nil || inv.Backend != (hotplug.BackendRef{Type: "vscsiu", Domid: 5, DevID: 1}) || !inv.Backend.Userspace() ||
		inv.Backend.Path() != "backend/vscsiu/5/1" {
		t.Errorf("vscsiu: %+v %v", inv, err)
	}
	inv, err = hotplug.ParseInvocation([]string{"remove", "XENBUS_PATH=/local/domain/0/backend/vscsiu/6/0"}, envOf(nil))
	if err != nil || inv.Backend != (hotplug.BackendRef{Home: "/local/domain/0", Type: "vscsiu", Domid: 6, DevID: 0}) ||
		inv.Backend.Rel() != "backend/vscsiu/6/0" {
		t.Errorf("vscsiu from the path: %+v %v", inv, err)
	}
	inv, err = hotplug.ParseInvocation([]string{"add"}, envOf(map[string]string{"XENBUS_TYPE": "my_scsi-2", "XENBUS_PATH": "backend/my_scsi-2/5/0"}))
	if err != nil || inv.Backend.Type != "my_scsi-2" || inv.Backend.Userspace() || inv.Backend.Rel() != "backend/my_scsi-2/5/0" {
		t.Errorf("another valid type: %+v %v", inv, err)
	}
	if (hotplug.BackendRef{Domid: 1, DevID: 2}).Rel() != "backend/vscsi/1/2" {
		t.Errorf("an empty Type is not vscsi")
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, libxl, "no command"},
		{[]string{"online"}, libxl, `"online"`},
		{[]string{"add"}, map[string]string{}, "XENBUS_PATH is not set"},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsi/5"}, `"backend/vscsi/5"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "frontend/vscsi/5/0"}, `"frontend/vscsi/5/0"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/VSCSI/5/0"}, `backend type "VSCSI"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/v.scsi/5/0"}, `backend type "v.scsi"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend//5/0"}, `backend type ""`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsiu/5/0", "XENBUS_TYPE": "vscsi"}, `XENBUS_TYPE "vscsi" but XENBUS_PATH "backend/vscsiu/5/0"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsiu/5/0", "XENBUS_TYPE": "Vscsiu"}, `XENBUS_TYPE "Vscsiu"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsiu/x/0", "XENBUS_TYPE": "vscsiu"}, `domid "x"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsi/5/0/x"}, `"backend/vscsi/5/0/x"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsi/+5/0"}, `domid "+5"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsi/5/99999999999"}, `devid "99999999999"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsi/32752/0"}, `domid "32752"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsi/5/0", "XENBUS_TYPE": "vbd"}, `XENBUS_TYPE "vbd"`},
		{[]string{"add"}, map[string]string{"XENBUS_PATH": "backend/vscsi/5/0", "XENBUS_BASE_PATH": "frontend"}, `"frontend"`},
	} {
		_, err := hotplug.ParseInvocation(c.args, envOf(c.env))
		var ue *hotplug.UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v, want a usage error naming %s", c.args, c.env, err, c.want)
		}
	}
}

// Config: YAML file, then environment; unknown keys and bad values are
// errors naming them.
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/hotplug.yaml"
	writeFile(t, file, "flavour: hctl\nstate_dir: /run/x\nlock_timeout: 5s\n")
	c, err := hotplug.LoadConfig(envOf(map[string]string{hotplug.EnvConfig: file, hotplug.EnvStateDir: "/run/y"}))
	if err != nil || c.Flavour != hotplug.FlavourHCTL || c.StateDir != "/run/y" || c.LockTimeout.Seconds() != 5 || c.ConfigfsFixture {
		t.Errorf("%+v %v", c, err)
	}
	for text, want := range map[string]string{
		"flavor: kernel\n":       "flavor",
		"flavour: pvops\n":       `"pvops"`,
		"state_dir: run/x\n":     `"run/x"`,
		"lock_timeout: soon\n":   `"soon"`,
		"log_level: chatty\n":    `"chatty"`,
		"configfs_root: [a]\n":   "line 1",
		"sysfs_root: relative\n": `"relative"`,
		// Strict (issue 14): a key twice, a second document.
		"flavour: kernel\nflavour: hctl\n":      "given twice",
		"flavour: kernel\n---\nflavour: hctl\n": "second YAML document",
	} {
		writeFile(t, file, text)
		if _, err := hotplug.LoadConfig(envOf(map[string]string{hotplug.EnvConfig: file})); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", text, err, want)
		}
	}
	if _, err := hotplug.LoadConfig(envOf(map[string]string{hotplug.EnvConfig: dir + "/missing.yaml"})); err == nil {
		t.Error("a named config file that is missing is not an error")
	}
	if _, err := hotplug.LoadConfig(envOf(map[string]string{hotplug.EnvConfig: file, hotplug.EnvFixture: "yes"})); err == nil {
		t.Error("bad fixture flag accepted")
	}
}

// TestLoadConfigHostilePaths: GOVSCSI_HOTPLUG_CONFIG naming a FIFO,
// /dev/zero, a directory or an oversize file is an error at once.
func TestLoadConfigHostilePaths(t *testing.T) {
	opfiletest.Check(t, opfile.MaxConfigSize, func(p string) error {
		_, err := hotplug.LoadConfig(envOf(map[string]string{hotplug.EnvConfig: p}))
		return err
	})
}
