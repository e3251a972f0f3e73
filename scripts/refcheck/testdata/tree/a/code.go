package a

// Follows protocol.md §1.2, §2.1-2.3 and the
// docs/backend.md
// §1 (P1, P2). A bare §2.1 is the protocol's; §7 is not.
type T struct{ P50 int } // the field is no pitfall
var s = "P3 in a string, P4 too"

// docs/backend.md, "Resume" and docs/backend.md's "no such heading";
// (docs/backend.md, "Resume: what a
// guest does").
// docs/missing.md and ../outside.md and xen-rig.md §6.
