// Package metrics renders the userspace backend's statistics (per-LUN
// counters and latency histograms from backend/stats, the vhosts' state
// and datapath counters) in the Prometheus text exposition format, version
// 0.0.4, and publishes them either as a node_exporter textfile-collector
// file that the daemon rewrites every interval (Textfile) or on a
// loopback-only HTTP endpoint (Listen, Serve). Both are off unless the
// daemon's configuration names them (backend/server, "metrics:").
//
// The text is written by hand (a few families, one escaping rule) rather
// than with the Prometheus client library, which would bring its registry
// and protobuf runtime into the daemon and the C library; the tests parse
// it with Prometheus's own parser (github.com/prometheus/common/expfmt).
//
// Names and labels (docs/backend.md, "Metrics"):
//
//	govscsi_backend_info{backend_type,domid} 1
//	govscsi_backend_uptime_seconds
//	govscsi_lun_commands_total{domid,vhost,dev,ctl,pdev,op="read|write|other"}
//	govscsi_lun_bytes_total{...,op="read|write"}
//	govscsi_lun_errors_total{...}
//	govscsi_lun_in_flight{...}
//	govscsi_lun_latency_seconds{...}   histogram of sampled commands
//	govscsi_vhost_state{domid,vhost}, govscsi_vhost_frontend_state{...},
//	govscsi_vhost_connected{...}
//	govscsi_vhost_ring_{requests,responses,rejected,replayed}_total{...},
//	govscsi_vhost_{notifies,events}_total{...}
package metrics

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/govscsi/govscsi/backend/stats"
)

// ContentType is the text format's HTTP content type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Data is what one exposition shows.
type Data struct {
	BackendType string
	Domid       uint32
	Uptime      time.Duration
	LUNs        []stats.LUNMetrics
	Vhosts      []stats.VhostStatus
}

// Write renders d. Families without a sample are left out.
func Write(w io.Writer, d Data) error {
	bw := bufio.NewWriter(w)
	e := &enc{w: bw}
	e.family("govscsi_backend_info", "gauge", "The userspace vscsi backend: its backend type directory and domain.")
	e.sample("govscsi_backend_info", labels{{"backend_type", d.BackendType}, {"domid", u(uint64(d.Domid))}}, "1")
	e.family("govscsi_backend_uptime_seconds", "gauge", "Seconds since the backend started.")
	e.sample("govscsi_backend_uptime_seconds", nil, f(d.Uptime.Seconds()))

	if len(d.LUNs) > 0 {
		e.family("govscsi_lun_commands_total", "counter", "SCSI commands completed by the LUN, by data direction (other: no data).")
		for _, l := range d.LUNs {
			for _, c := range []struct {
				op string
				n  uint64
			}{{"read", l.Reads}, {"write", l.Writes}, {"other", l.Others}} {
				e.sample("govscsi_lun_commands_total", lunLabels(l.Meta, labels{{"op", c.op}}), u(c.n))
			}
		}
		e.family("govscsi_lun_bytes_total", "counter", "Data bytes moved by the LUN's commands, by direction.")
		for _, l := range d.LUNs {
			e.sample("govscsi_lun_bytes_total", lunLabels(l.Meta, labels{{"op", "read"}}), u(l.ReadBytes))
			e.sample("govscsi_lun_bytes_total", lunLabels(l.Meta, labels{{"op", "write"}}), u(l.WriteBytes))
		}
		e.family("govscsi_lun_errors_total", "counter", "Commands answered with a SCSI status other than GOOD or a host error (CHECK CONDITION, BUSY, ...).")
		for _, l := range d.LUNs {
			e.sample("govscsi_lun_errors_total", lunLabels(l.Meta, nil), u(l.Errors))
		}
		e.family("govscsi_lun_in_flight", "gauge", "Commands the LUN is executing now.")
		for _, l := range d.LUNs {
			e.sample("govscsi_lun_in_flight", lunLabels(l.Meta, nil), strconv.FormatInt(l.InFlight, 10))
		}
		e.family("govscsi_lun_latency_seconds", "histogram",
			"Command latency inside the backend, of one command in "+strconv.Itoa(stats.LatencySample)+" (sampled: a clock read is a system call in a PV dom0).")
		for _, l := range d.LUNs {
			for _, b := range l.Latency.Buckets {
				e.sample("govscsi_lun_latency_seconds_bucket", lunLabels(l.Meta, labels{{"le", f(float64(b.UpperNS) / 1e9)}}), u(b.Cumulative))
			}
			e.sample("govscsi_lun_latency_seconds_bucket", lunLabels(l.Meta, labels{{"le", "+Inf"}}), u(l.Latency.Count))
			e.sample("govscsi_lun_latency_seconds_sum", lunLabels(l.Meta, nil), f(float64(l.Latency.SumNS)/1e9))
			e.sample("govscsi_lun_latency_seconds_count", lunLabels(l.Meta, nil), u(l.Latency.Count))
		}
	}

	if len(d.Vhosts) > 0 {
		gauges := []struct {
			name, help string
			val        func(v stats.VhostStatus) string
		}{
			{"govscsi_vhost_state", "The xenbus state the backend last wrote for the vhost (4: connected).",
				func(v stats.VhostStatus) string { return strconv.Itoa(v.State) }},
			{"govscsi_vhost_frontend_state", "The guest's xenbus state of the vhost as last seen (-1: none yet).",
				func(v stats.VhostStatus) string { return strconv.Itoa(v.Frontend) }},
			{"govscsi_vhost_connected", "1 while the vhost's ring is mapped and served.",
				func(v stats.VhostStatus) string { return b(v.Connected) }},
		}
		for _, g := range gauges {
			e.family(g.name, "gauge", g.help)
			for _, v := range d.Vhosts {
				e.sample(g.name, vhostLabels(v), g.val(v))
			}
		}
		counters := []struct {
			name, help string
			val        func(v stats.VhostStatus) uint64
		}{
			{"govscsi_vhost_ring_requests_total", "Requests taken from the ring by the current connection.",
				func(v stats.VhostStatus) uint64 { return v.Requests }},
			{"govscsi_vhost_ring_responses_total", "Responses written to the ring by the current connection.",
				func(v stats.VhostStatus) uint64 { return v.Responses }},
			{"govscsi_vhost_ring_rejected_total", "Requests answered with an error before reaching a LUN (malformed, bad grant, unknown LUN).",
				func(v stats.VhostStatus) uint64 { return v.Rejected }},
			{"govscsi_vhost_ring_replayed_total", "Requests run again from the in-flight journal after a restart.",
				func(v stats.VhostStatus) uint64 { return v.Replayed }},
			{"govscsi_vhost_notifies_total", "Event-channel notifications sent to the guest.",
				func(v stats.VhostStatus) uint64 { return v.Notifies }},
			{"govscsi_vhost_events_total", "Event-channel notifications received from the guest.",
				func(v stats.VhostStatus) uint64 { return v.Events }},
		}
		for _, c := range counters {
			e.family(c.name, "counter", c.help)
			for _, v := range d.Vhosts {
				e.sample(c.name, vhostLabels(v), u(c.val(v)))
			}
		}
	}
	if e.err != nil {
		return e.err
	}
	return bw.Flush()
}

type label struct{ name, value string }
type labels []label

func lunLabels(m stats.Meta, extra labels) labels {
	return append(labels{{"domid", u(uint64(m.Domid))}, {"vhost", m.Vhost}, {"dev", m.Dev}, {"ctl", m.Addr}, {"pdev", m.Pdev}}, extra...)
}

func vhostLabels(v stats.VhostStatus) labels {
	return labels{{"domid", u(uint64(v.Domid))}, {"vhost", v.Vhost}}
}

func u(n uint64) string  { return strconv.FormatUint(n, 10) }
func f(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
func b(x bool) string {
	if x {
		return "1"
	}
	return "0"
}

// enc writes lines, remembering the first error.
type enc struct {
	w   *bufio.Writer
	err error
}

func (e *enc) put(parts ...string) {
	for _, p := range parts {
		if e.err == nil {
			_, e.err = e.w.WriteString(p)
		}
	}
}

func (e *enc) family(name, typ, help string) {
	e.put("# HELP ", name, " ", helpEscaper.Replace(help), "\n# TYPE ", name, " ", typ, "\n")
}

func (e *enc) sample(name string, ls labels, value string) {
	e.put(name)
	if len(ls) > 0 {
		e.put("{")
		for i, l := range ls {
			if i > 0 {
				e.put(",")
			}
			e.put(l.name, `="`, valueEscaper.Replace(l.value), `"`)
		}
		e.put("}")
	}
	e.put(" ", value, "\n")
}

// The format's escaping: label values escape backslash, double quote and
// line feed; HELP text backslash and line feed. A p-dev is operator input
// and may hold any of them.
var (
	valueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)
