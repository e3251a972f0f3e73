package xenif

import "testing"

func TestCheckCopyOp(t *testing.T) {
	cases := []struct {
		op   GrantCopyOp
		want int16
	}{
		{GrantCopyOp{Domid: 5, Offset: 0, Local: make([]byte, PageSize)}, GNTSTOkay},
		{GrantCopyOp{Domid: 5, Offset: 4095, Local: make([]byte, 1)}, GNTSTOkay},
		{GrantCopyOp{Domid: 5, Offset: 4095, Local: make([]byte, 2)}, GNTSTBadCopyArg},
		{GrantCopyOp{Domid: 5, Offset: 0, Local: make([]byte, PageSize+1)}, GNTSTBadCopyArg},
		{GrantCopyOp{Domid: 5, Offset: 65535, Local: make([]byte, 1)}, GNTSTBadCopyArg},
		{GrantCopyOp{Domid: DomidFirstReserved - 1, Local: make([]byte, 1)}, GNTSTOkay},
		{GrantCopyOp{Domid: DomidFirstReserved, Local: make([]byte, 1)}, GNTSTBadDomain},
		{GrantCopyOp{Domid: 1 << 16, Local: make([]byte, 1)}, GNTSTBadDomain},
	}
	for i, c := range cases {
		if got := CheckCopyOp(&c.op); got != c.want {
			t.Errorf("case %d (dom %d off %d len %d): %d, want %d", i, c.op.Domid, c.op.Offset, len(c.op.Local), got, c.want)
		}
	}
}

func TestGrantStatusText(t *testing.T) {
	for s, want := range map[int16]string{0: "okay", -3: "bad grant ref", -13: "no space", -14: "grant status -14", 1: "grant status 1"} {
		if got := GrantStatusText(s); got != want {
			t.Errorf("GrantStatusText(%d) = %q, want %q", s, got, want)
		}
	}
}
