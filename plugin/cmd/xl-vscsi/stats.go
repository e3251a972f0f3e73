package main

// `xl-vscsi stats`: the userspace backend's per-LUN counters, read from
// its stats socket with backend/stats's client.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/govscsi/govscsi/backend/stats"
)

const statsHelp = `Ask the userspace vscsi backend (vscsi-backend) for its statistics over
its stats socket and print one row per LUN: the guest's address, the rates
since the previous query (IOPS, MB/s), the bytes read and written, errors
(CHECK CONDITION, BUSY, host errors), commands in flight and the latency
percentiles p50/p99 in microseconds. Then one row per vhost with its ring
counters. --json prints the backend's snapshot as it came.`

func setupStats(fs *flag.FlagSet) runner {
	sock := fs.String("socket", stats.DefaultSocket, "the backend's stats socket `P` (config stats_socket)")
	asJSON := fs.Bool("json", false, "print the snapshot as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after `D`")
	return func(e *env, args []string) error {
		if len(args) != 0 {
			return usagef("stats takes no arguments, got %q", args[0])
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		snap, err := stats.Fetch(ctx, *sock)
		if err != nil {
			return fmt.Errorf("stats from %s (is vscsi-backend running, with stats_socket there?): %w", *sock, err)
		}
		if *asJSON {
			b, err := json.MarshalIndent(snap, "", "  ")
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(append(b, '\n'))
			return err
		}
		return formatStats(e.stdout, snap)
	}
}

// formatStats writes the LUN table, then the vhost table:
//
//	Dom Vhost Dev   C:T:L IOPS MB/s Read Written Errors In-flight p50-us p99-us P-dev
//	Dom Vhost State FE-state Connected Requests Responses Rejected Error
func formatStats(w io.Writer, s stats.Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "Dom\tVhost\tDev\tC:T:L\tIOPS\tMB/s\tRead\tWritten\tErrors\tIn-flight\tp50-us\tp99-us\tP-dev")
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	for _, l := range s.LUNs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", l.Domid, l.Vhost, l.Dev, l.Addr,
			f1(l.IOPS), f1(l.BytesPerSec/1e6), humanBytes(l.ReadBytes), humanBytes(l.WriteBytes),
			l.Errors, l.InFlight, f1(l.LatencyUS.P50), f1(l.LatencyUS.P99), l.Pdev)
	}
	if len(s.LUNs) == 0 {
		fmt.Fprintln(tw, "-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Vhosts) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "Dom\tVhost\tState\tFE-state\tConnected\tRequests\tResponses\tRejected\tError")
	for _, v := range s.Vhosts {
		e := v.Error
		if e == "" {
			e = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%v\t%d\t%d\t%d\t%s\n", v.Domid, v.Vhost, v.State, v.Frontend, v.Connected, v.Requests, v.Responses, v.Rejected, e)
	}
	return tw.Flush()
}

// humanBytes renders n with a binary unit (4096 -> "4.0K").
func humanBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + string(units[i])
}
