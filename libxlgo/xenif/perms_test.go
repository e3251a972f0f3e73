package xenif

import "testing"

func TestPermsRoundTrip(t *testing.T) {
	for _, s := range []string{"n0", "n0 r5", "b7 n0 w3", "r0 r65535"} {
		p, err := ParsePerms(s)
		if err != nil {
			t.Fatalf("ParsePerms(%q): %v", s, err)
		}
		if got := p.String(); got != s {
			t.Errorf("ParsePerms(%q).String() = %q", s, got)
		}
	}
}

func TestParsePermsErrors(t *testing.T) {
	for _, s := range []string{"", "x0", "r", "r-1", "r65536", "rr5"} {
		if _, err := ParsePerms(s); err == nil {
			t.Errorf("ParsePerms(%q) accepted a bad list", s)
		}
	}
}

func TestPermsAccess(t *testing.T) {
	// Backend dir: owned by dom0, readable by the guest 5, nothing for others.
	p, _ := ParsePerms("n0 r5")
	cases := []struct {
		d           uint32
		read, write bool
	}{
		{0, true, true}, {5, true, false}, {6, false, false},
	}
	for _, c := range cases {
		if p.CanRead(c.d) != c.read || p.CanWrite(c.d) != c.write {
			t.Errorf("%s for dom%d: read=%v write=%v, want %v %v", p, c.d, p.CanRead(c.d), p.CanWrite(c.d), c.read, c.write)
		}
	}
	// Frontend dir owned by the guest: the guest has full access.
	f, _ := ParsePerms("n5 r0")
	if !f.CanWrite(5) || f.CanWrite(7) {
		t.Errorf("%s: owner must write, others must not", f)
	}
}
