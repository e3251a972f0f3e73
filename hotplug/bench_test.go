package hotplug_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/govscsi/govscsi/hotplug"
	"github.com/govscsi/govscsi/plugin"
)

// The numbers behind docs/hotplug.md's "why a Go binary": one whole
// add+remove through the wrapper and binary (fork+exec, libxenstore
// connection, configfs work) against the cost of a single xenstore-read
// fork, which a shell implementation would pay per node it reads or writes.

func BenchmarkRunnerAddRemove(b *testing.B) {
	r := newXSRig(b)
	r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}, "dev-1": {"", r.backing + ".1"}})
	os.WriteFile(r.backing+".1", []byte("x"), 0o644)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
			b.Fatal(err)
		}
		r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0")
	}
}

func BenchmarkScriptAddRemove(b *testing.B) {
	t := b
	r := newXSRig(t)
	r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
	env := plugin.HotplugEnv(wrapperPath(t), 5, 0)
	hotplugBinary(t)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code := r.script(t, env, "add"); code != 0 {
			b.Fatalf("add: exit %d", code)
		}
		r.script(t, env, "remove")
	}
}

func BenchmarkXenstoreReadFork(b *testing.B) {
	t := b
	r := newXSRig(t)
	r.vhost(5, 0, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := exec.Command("xenstore-read", "backend/vscsi/5/0/state").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
