// Command peer runs the scripted vscsi backend (on a dom0 xenstore socket)
// and frontend (on a guest's socket) of tests/simpeer against a running
// fake-xenstored, for the C API test (tests/cshared/run.sh):
//
//	peer -socket S -guest-socket S.5 -domid 5
//
// It prints "ready" once both peers watch, and stops on SIGTERM/SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/tests/simpeer"
)

func main() {
	sock := flag.String("socket", "", "dom0 xenstore socket")
	gsock := flag.String("guest-socket", "", "the guest's xenstore socket")
	domid := flag.Uint("domid", 5, "the guest's domid")
	verbose := flag.Bool("v", false, "log every peer action on stderr")
	flag.Parse()
	if *sock == "" || *gsock == "" {
		fmt.Fprintln(os.Stderr, "usage: peer -socket PATH -guest-socket PATH [-domid N] [-v]")
		os.Exit(2)
	}
	be, err := xsfake.Dial(*sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
	fe, err := xsfake.Dial(*gsock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
	var logf func(string, ...any)
	if *verbose {
		logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 2)
	go func() { done <- (&simpeer.Backend{Store: be, DevErrors: true, Log: logf}).Run(ctx) }()
	go func() { done <- (&simpeer.Frontend{Store: fe, Domid: uint32(*domid), Log: logf}).Run(ctx) }()
	fmt.Println("ready")
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			stop()
		}
	}
	be.Close()
	fe.Close()
}
