// Command peer runs the scripted vscsi backend (on a dom0 xenstore socket)
// and frontend (on a guest's socket) of tests/simpeer against a running
// fake-xenstored, for the C API test (tests/cshared/run.sh):
//
//	peer -socket S -guest-socket S.5 -domid 5
//	peer -frontend-only -guest-socket S.6 -domid 6 [-fakexen-ring]
//
// With -frontend-only it plays only the guest (the backend is the real
// one, embedded in libgovscsi.so by the test program). -fakexen-ring makes
// the frontend write the ring-ref and event-channel that a library built
// with the govscsi_fakexen tag publishes for the guest
// (/local/domain/<domid>/data/fakexen-{ring-ref,event-channel}): the
// frontend starts once they exist.
//
// It prints "ready" once connected, and stops on SIGTERM/SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/tests/simpeer"
)

func main() {
	sock := flag.String("socket", "", "dom0 xenstore socket")
	gsock := flag.String("guest-socket", "", "the guest's xenstore socket")
	domid := flag.Uint("domid", 5, "the guest's domid")
	frontendOnly := flag.Bool("frontend-only", false, "play only the guest's frontend")
	fakeRing := flag.Bool("fakexen-ring", false, "use the ring the govscsi_fakexen library publishes for the guest")
	verbose := flag.Bool("v", false, "log every peer action on stderr")
	flag.Parse()
	if *gsock == "" || (*sock == "" && !*frontendOnly) {
		fmt.Fprintln(os.Stderr, "usage: peer -socket PATH -guest-socket PATH [-domid N] [-v]\n       peer -frontend-only -guest-socket PATH [-domid N] [-fakexen-ring] [-v]")
		os.Exit(2)
	}
	var logf func(string, ...any)
	if *verbose {
		logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	fe, err := xsfake.Dial(*gsock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
	defer fe.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 2)
	n := 0
	if !*frontendOnly {
		be, err := xsfake.Dial(*sock)
		if err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(1)
		}
		defer be.Close()
		n++
		go func() { done <- (&simpeer.Backend{Store: be, DevErrors: true, Log: logf}).Run(ctx) }()
	}
	front := &simpeer.Frontend{Store: fe, Domid: uint32(*domid), Log: logf}
	n++
	go func() {
		if *fakeRing {
			base := fmt.Sprintf("/local/domain/%d/data/", *domid)
			for {
				ref, err1 := fe.Read(xenif.NoTx, base+"fakexen-ring-ref")
				port, err2 := fe.Read(xenif.NoTx, base+"fakexen-event-channel")
				if err1 == nil && err2 == nil {
					front.RingRef, front.EventChannel = ref, port
					break
				}
				select {
				case <-ctx.Done():
					done <- nil
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
			if logf != nil {
				logf("peer: fakexen ring-ref %s event-channel %s", front.RingRef, front.EventChannel)
			}
		}
		done <- front.Run(ctx)
	}()
	fmt.Println("ready")
	for i := 0; i < n; i++ {
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			stop()
		}
	}
}
