package xenbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// maxDevs bounds the devices looked at per vhost.
const maxDevs = 4096

// devNames lists BE/vscsi-devs/dev-N in numeric order.
func (v *vhost) devNames() []string {
	names, err := v.store.Directory(xenif.NoTx, v.be+"/vscsi-devs")
	if err != nil {
		return nil
	}
	type nd struct {
		n    uint64
		name string
	}
	var l []nd
	for _, name := range names {
		if n, ok := devIndex(name); ok {
			l = append(l, nd{n, name})
		}
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n < l[j].n })
	if len(l) > maxDevs {
		v.log.Warn("too many devices; ignoring the rest", "count", len(l), "max", maxDevs)
		l = l[:maxDevs]
	}
	out := make([]string, len(l))
	for i := range l {
		out[i] = l[i].name
	}
	return out
}

// devFail writes dev state 6 and dev-N/error = reason (P5).
func (v *vhost) devFail(dp, reason string) {
	v.log.Warn("device refused", "dev", dp[len(v.be)+1:], "reason", reason)
	_ = v.writeIn(dp, "error", reason)
	_ = v.writeIn(dp, "state", strconv.Itoa(xenif.StateClosed))
}

// addOrDel is scsiback's ADD_OR_DEL pass (FE=3 and FE=7), §2.2.
func (v *vhost) addOrDel() { v.devPass(true) }

// restoreDevs re-opens devices in state 3 or 4 that have no translation
// (a daemon restart under a connected guest); it adds and removes nothing.
func (v *vhost) restoreDevs() { v.devPass(false) }

func (v *vhost) devPass(full bool) {
	for _, name := range v.devNames() {
		dp := v.be + "/vscsi-devs/" + name
		rawSt, ok := v.read(dp + "/state")
		if !ok {
			continue
		}
		st, err := ParseState(rawSt)
		if err != nil {
			continue
		}
		pdev, ok := v.read(dp + "/p-dev")
		if !ok {
			if full && st != xenif.StateClosed {
				v.devFail(dp, "no p-dev")
			}
			continue
		}
		rawV, _ := v.read(dp + "/v-dev")
		addr, err := ParseVdev(rawV)
		if err != nil {
			if full && st != xenif.StateClosed {
				v.devFail(dp, err.Error())
			}
			continue
		}
		switch {
		case st == xenif.StateInitialising && full:
			if d := v.devs[addr]; d != nil {
				v.devFail(dp, fmt.Sprintf("Virtual ID %d:%d:%d is already used by %s", addr.Channel, addr.Target, addr.LUN, d.name))
				continue
			}
			if err := v.open(name, pdev, addr); err != nil {
				v.devFail(dp, err.Error())
				continue
			}
			_ = v.store.Rm(xenif.NoTx, dp+"/error")
			_ = v.writeIn(dp, "state", strconv.Itoa(xenif.StateInitialised))
		case st == xenif.StateInitialised || st == xenif.StateConnected:
			if d := v.devs[addr]; d != nil {
				continue
			}
			if err := v.open(name, pdev, addr); err != nil {
				if st == xenif.StateInitialised {
					v.devFail(dp, err.Error())
				} else {
					// Linux writes nothing here; the guest already has the
					// LUN, so the reason goes to the error node only.
					v.log.Warn("cannot re-open a connected device", "dev", name, "error", err)
					_ = v.writeIn(dp, "error", err.Error())
				}
			}
		case st == xenif.StateClosing && full:
			d := v.devs[addr]
			if d == nil || d.name != name {
				continue
			}
			v.drop(addr, true)
			_ = v.writeIn(dp, "state", strconv.Itoa(xenif.StateClosed))
		}
	}
}

// updateDev is scsiback's UPDATEDEV pass (FE=4): every device in state 3
// goes to 4.
func (v *vhost) updateDev() {
	for _, name := range v.devNames() {
		dp := v.be + "/vscsi-devs/" + name
		if st, ok := v.read(dp + "/state"); !ok || st != strconv.Itoa(xenif.StateInitialised) {
			continue
		}
		rawV, _ := v.read(dp + "/v-dev")
		addr, err := ParseVdev(rawV)
		if err != nil || v.devs[addr] == nil || v.devs[addr].name != name {
			v.devFail(dp, "no translation for a device in state 3")
			continue
		}
		if err := v.writeIn(dp, "state", strconv.Itoa(xenif.StateConnected)); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				v.drop(addr, true)
				continue
			}
			v.drop(addr, true)
			v.devFail(dp, "cannot write state 4: "+err.Error())
		}
	}
}

// open opens pdev and adds the translation.
func (v *vhost) open(name, pdev string, addr datapath.Addr) error {
	statePath := v.devStatePath(name)
	if statePath != "" {
		if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	e, err := v.b.cfg.OpenLUN(LUNRequest{Pdev: pdev, Addr: addr, Domid: v.k.domid, Vhost: v.k.vhost, Dev: name,
		ReportLUNs: v.reportLUNs(addr), StatePath: statePath})
	if err != nil {
		return err
	}
	if e.LUN == nil {
		return errors.New("opener returned no LUN")
	}
	v.devs[addr] = &dev{name: name, pdev: pdev, entry: e, statePath: statePath}
	v.table.Set(addr, e)
	v.publish()
	v.log.Info("device added", "dev", name, "pdev", pdev, "ctl", fmt.Sprintf("%d:%d:%d", addr.Channel, addr.Target, addr.LUN))
	return nil
}

// drop removes a translation: no new command reaches the LUN, commands in
// flight finish (bounded by TeardownTimeout), then the LUN is closed. With
// forget the device is really removed and its state file (a RAM disk's
// contents) deleted; without, it is only closed (a handover, a stop).
func (v *vhost) drop(addr datapath.Addr, forget bool) {
	d := v.devs[addr]
	if d == nil {
		return
	}
	v.table.Remove(addr)
	delete(v.devs, addr)
	if v.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), v.b.cfg.TeardownTimeout)
		if err := v.conn.WaitIdle(ctx, addr); err != nil {
			v.log.Warn("commands still running on a removed device", "dev", d.name, "error", err)
		}
		cancel()
	}
	if err := d.entry.LUN.Close(); err != nil {
		v.log.Warn("closing LUN", "dev", d.name, "error", err)
	}
	if forget && d.statePath != "" {
		if err := os.Remove(d.statePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			v.log.Warn("removing the device's state", "dev", d.name, "path", d.statePath, "error", err)
		}
	}
	v.publish()
	v.log.Info("device removed", "dev", d.name, "pdev", d.pdev)
}

// dropAll removes every translation (unregister, release, shutdown).
func (v *vhost) dropAll(forget bool) {
	for a := range v.devs {
		v.drop(a, forget)
	}
}
