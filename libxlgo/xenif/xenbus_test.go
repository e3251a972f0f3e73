package xenif

import "testing"

func TestStateName(t *testing.T) {
	for s, want := range map[int]string{
		StateUnknown: "unknown", StateInitialising: "initialising", StateInitWait: "initwait",
		StateInitialised: "initialised", StateConnected: "connected", StateClosing: "closing",
		StateClosed: "closed", StateReconfiguring: "reconfiguring", StateReconfigured: "reconfigured",
		9: "9", -1: "-1",
	} {
		if got := StateName(s); got != want {
			t.Errorf("StateName(%d) = %q, want %q", s, got, want)
		}
	}
}
