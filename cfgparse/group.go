package cfgparse

import (
	"errors"
	"fmt"
	"strconv"
)

// This file groups resolved devices into vhosts (one vscsiif connection
// each) and hands out ids. The vdev host number only groups: it is never
// sent to the guest (P10). Ids are monotonic and never reused (P29), and
// the first free vhost devid is a numeric max + 1 (P31), both supplied by
// the caller when a domain already has vhosts.

// Device is a spec resolved for one backend flavour: what one
// vscsi-devs/dev-N will hold.
type Device struct {
	Origin             // where the spec came from, for messages
	VDev        HCTL   // VDev.Host selects the vhost
	PDev        string // the backend's p-dev value
	PDevName    string // the /dev path the user gave, "" otherwise
	FeatureHost bool
}

// VHostDev is a Device with its per-vhost id (the N of dev-N).
type VHostDev struct {
	ID int
	Device
}

// VHost is one vscsi controller of a domain.
type VHost struct {
	DevID       int    // the <vhost> of the xenstore paths
	Index       uint32 // the vdev host number that selects it
	FeatureHost bool
	Devs        []VHostDev
	// NextDev is the next free dev-N id. For an existing vhost the caller
	// sets it from its persistent counter; Group never hands out an id
	// below it or below any id in Devs, so detached ids are not reused.
	NextDev int
}

// HotAdd is a set of new devices for a vhost that already exists.
type HotAdd struct {
	VHost int // DevID of the existing vhost
	Devs  []VHostDev
}

// Plan is what Group decided: vhosts to create and devices to add to
// existing vhosts, both in order of first appearance in the input.
type Plan struct {
	Create []VHost
	Add    []HotAdd
	// NextVHost is the next free vhost devid after this plan.
	NextVHost int
	// Existing holds the caller's vhosts with Devs and NextDev updated by
	// the hot-adds, so the caller can persist the new counters.
	Existing []VHost
}

// GroupError is a device that conflicts with another one on the same
// vhost. Other is the earlier entry (Entry -1 and Spec "dev-N" when it is
// a device the domain already has).
type GroupError struct {
	Origin
	Other Origin
	Token string
	Msg   string
}

func (e *GroupError) Error() string {
	return fmt.Sprintf("%s: %q: %s (conflicts with %s)", e.Origin, e.Token, e.Msg, e.Other)
}

// Group assigns devs to vhosts by vdev host number. existing are the
// domain's vhosts (nil for a new domain); devices whose vdev host matches
// one of them become hot-adds to it. New vhosts get devids from
// nextVHost upwards (raised above every existing DevID if lower), in order
// of first appearance; their devices get dev-0, dev-1, ... Errors (all of
// them, joined) are *GroupError: a vdev c:t:l used twice on one vhost, or
// two different feature-host settings on one vhost.
func Group(devs []Device, existing []VHost, nextVHost int) (Plan, error) {
	if nextVHost < 0 {
		nextVHost = 0
	}
	type slot struct {
		vh       *VHost
		isNew    bool
		addIdx   int    // index into plan.Add for existing vhosts, -1 until used
		fhOrigin Origin // who set feature-host first
		fhKnown  bool
		used     map[[3]uint64]Origin
	}
	var plan Plan
	var order []*slot
	byIndex := map[uint32]*slot{}
	plan.Existing = make([]VHost, len(existing))
	for i, v := range existing {
		v.Devs = append([]VHostDev(nil), v.Devs...)
		plan.Existing[i] = v
		s := &slot{vh: &plan.Existing[i], addIdx: -1, used: map[[3]uint64]Origin{}}
		for _, d := range v.Devs {
			s.used[ctl(d.VDev)] = existingOrigin(v.DevID, d)
			if d.ID >= s.vh.NextDev {
				s.vh.NextDev = d.ID + 1
			}
		}
		s.fhKnown = true
		s.fhOrigin = Origin{Entry: EntryAttached, Spec: "vhost " + strconv.Itoa(v.DevID) + " (attached)"}
		if v.DevID >= nextVHost {
			nextVHost = v.DevID + 1
		}
		byIndex[v.Index] = s
	}

	var errs []error
	for _, d := range devs {
		s := byIndex[d.VDev.Host]
		if s == nil {
			s = &slot{vh: &VHost{DevID: nextVHost, Index: d.VDev.Host, FeatureHost: d.FeatureHost},
				isNew: true, addIdx: -1, used: map[[3]uint64]Origin{}, fhOrigin: d.Origin, fhKnown: true}
			nextVHost++
			byIndex[d.VDev.Host] = s
			order = append(order, s)
		}
		if s.vh.FeatureHost != d.FeatureHost {
			ge := &GroupError{Origin: d.Origin, Other: s.fhOrigin, Token: "feature-host",
				Msg: fmt.Sprintf("set here but not on the other devices of vdev host %d", d.VDev.Host)}
			if !d.FeatureHost {
				ge.Token = d.VDev.String()
				ge.Msg = fmt.Sprintf("no feature-host here, but the other devices of vdev host %d have it", d.VDev.Host)
			}
			errs = append(errs, ge)
			continue
		}
		if prev, dup := s.used[ctl(d.VDev)]; dup {
			errs = append(errs, &GroupError{Origin: d.Origin, Other: prev, Token: d.VDev.String(),
				Msg: fmt.Sprintf("vdev %d:%d:%d used twice on vdev host %d", d.VDev.Channel, d.VDev.Target, d.VDev.LUN, d.VDev.Host)})
			continue
		}
		s.used[ctl(d.VDev)] = d.Origin
		vd := VHostDev{ID: s.vh.NextDev, Device: d}
		s.vh.NextDev++
		s.vh.Devs = append(s.vh.Devs, vd)
		if !s.isNew {
			if s.addIdx < 0 {
				s.addIdx = len(plan.Add)
				plan.Add = append(plan.Add, HotAdd{VHost: s.vh.DevID})
			}
			plan.Add[s.addIdx].Devs = append(plan.Add[s.addIdx].Devs, vd)
		}
	}
	if len(errs) > 0 {
		return Plan{}, errors.Join(errs...)
	}
	for _, s := range order {
		plan.Create = append(plan.Create, *s.vh)
	}
	plan.NextVHost = nextVHost
	return plan, nil
}

func ctl(h HCTL) [3]uint64 { return [3]uint64{uint64(h.Channel), uint64(h.Target), h.LUN} }

// existingOrigin names an attached device in messages: its own origin if
// the caller kept one, else "dev-N of vhost V (attached)".
func existingOrigin(vhost int, d VHostDev) Origin {
	if d.Spec != "" {
		return d.Origin
	}
	return Origin{Entry: EntryAttached, Spec: fmt.Sprintf("dev-%d of vhost %d (attached)", d.ID, vhost)}
}
