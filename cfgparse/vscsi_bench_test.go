package cfgparse

import (
	"fmt"
	"testing"
)

func BenchmarkParseSpec(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseSpec("/dev/disk/by-id/scsi-35000c500a1b2c3d4, 0:0:1:0, feature-host"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanRender: 64 devices on 4 vhosts, parse + group + render.
func BenchmarkPlanRender(b *testing.B) {
	var specs []string
	for i := 0; i < 64; i++ {
		specs = append(specs, fmt.Sprintf("naa.5001405012345678:%d,%d:0:%d:0", i, i%4, i/4))
	}
	b.ReportAllocs()
	for b.Loop() {
		entries, _, err := ParseSpecs(specs, nil)
		if err != nil {
			b.Fatal(err)
		}
		devs := make([]Device, len(entries))
		for i, e := range entries {
			devs[i] = Device{Origin: e.Origin, VDev: e.Parsed.VDev, PDev: e.Parsed.PDev.String()}
		}
		plan, err := Group(devs, nil, 0)
		if err != nil {
			b.Fatal(err)
		}
		if w := plan.Render(Domains{Frontend: 5}); len(w) != 2+4*8+64*3 {
			b.Fatalf("%d writes", len(w))
		}
	}
}

// BenchmarkResolveDevPath: /dev path -> sysfs -> LIO on the fixture trees
// (file system bound; the real sysfs/configfs are in-memory and faster).
func BenchmarkResolveDevPath(b *testing.B) {
	r := fixtureResolver(b)
	p := PDev{Kind: PDevPath, Path: "/dev/sdc"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Resolve(p, FlavourKernel); err != nil {
			b.Fatal(err)
		}
	}
}
