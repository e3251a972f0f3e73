package main

import (
	"path"
	"slices"
)

// Intended is a difference from LIO that govscsi keeps on purpose. Every
// entry has a line in docs/backend.md ("Differences from LIO"), which
// TestIntendedDocumented checks. An entry matches a case by its ID
// pattern (path.Match syntax) and only when our answer is one of those
// listed, so a later change of our answer shows up as a new difference.
type Intended struct {
	Pattern string
	Ours    []string // our outcomes as Outcome.String prints them
	Reason  string   // the short reason; docs/backend.md has the long one
}

// Outcome strings the entries use.
const (
	good    = "GOOD"
	invCDB  = "CHECK 5/24/00"
	invOp   = "CHECK 5/20/00"
	lbaOOR  = "CHECK 5/21/00"
	invCIU  = "CHECK 5/0E/03"
	invPar  = "CHECK 5/26/00"
	plenErr = "CHECK 5/1A/00"
	miscmp  = "CHECK E/1D/00"
	resConf = "RESERVATION-CONFLICT"
)

var intended = []Intended{}

func intendedFor(id string, lio, ours Outcome) *Intended {
	for i := range intended {
		e := &intended[i]
		if ok, _ := path.Match(e.Pattern, id); ok && slices.Contains(e.Ours, ours.String()) {
			return e
		}
	}
	return nil
}
