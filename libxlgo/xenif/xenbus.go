package xenif

import "strconv"

// Xenbus states: the values of every `state` node of a PV device, the
// vhost's and each vscsi-devs/dev-N's, on both the backend and the frontend
// side (xen/include/public/io/xenbus.h; docs/protocol.md §1.1). They are
// untyped because they are compared with numbers read from xenstore. The
// one definition for the toolstack, the hotplug script, the backend and the
// scripted peers.
const (
	StateUnknown       = 0 // also what a missing node reads as
	StateInitialising  = 1
	StateInitWait      = 2
	StateInitialised   = 3
	StateConnected     = 4
	StateClosing       = 5
	StateClosed        = 6
	StateReconfiguring = 7
	StateReconfigured  = 8
)

var stateNames = [...]string{"unknown", "initialising", "initwait", "initialised", "connected", "closing", "closed", "reconfiguring", "reconfigured"}

// StateName names a xenbus state ("connected"), or gives its number if it
// is none.
func StateName(s int) string {
	if s >= 0 && s < len(stateNames) {
		return stateNames[s]
	}
	return strconv.Itoa(s)
}
