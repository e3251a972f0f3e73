package scsi

import "sync"

// LogicalUnit is what every I_T nexus of one logical unit shares: a LUN
// attached to several guests (the same backing file or block device) is
// one logical unit, and each guest vhost that has it is a Disk of its own
// (its I_T nexus: unit attentions, mode parameters, its own descriptor).
//
// mu orders the commands that must not interleave: medium writes hold it
// shared, COMPARE AND WRITE holds it exclusively (its compare and write
// are atomic against every other writer of the unit, from any nexus).
type LogicalUnit struct {
	mu sync.RWMutex
}

// NewLogicalUnit returns a logical unit with no nexus yet.
func NewLogicalUnit() *LogicalUnit { return &LogicalUnit{} }
