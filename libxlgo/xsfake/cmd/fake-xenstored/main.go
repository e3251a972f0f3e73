// Command fake-xenstored runs the xsfake test server on Unix sockets, for
// shell tests with Debian's xenstore-* tools or programs linked with
// libxenstore:
//
//	fake-xenstored -socket /tmp/xs/socket [-domain 5=/tmp/xs/socket.5] [-dump]
//	XENSTORED_PATH=/tmp/xs/socket xenstore-write /a 1
//
// It prints "ready <socket>" on stdout once listening and runs until
// SIGINT/SIGTERM; with -dump it then prints the tree (xenstore-ls -f -p
// style) on stdout.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/govscsi/govscsi/libxlgo/xsfake"
)

type domainFlags []string

func (d *domainFlags) String() string     { return strings.Join(*d, ",") }
func (d *domainFlags) Set(v string) error { *d = append(*d, v); return nil }

func main() {
	socket := flag.String("socket", "", "dom0 socket path (required)")
	dump := flag.Bool("dump", false, "print the tree on exit")
	verbose := flag.Bool("v", false, "log every request on stderr")
	var doms domainFlags
	flag.Var(&doms, "domain", "`domid=path`: an extra socket whose connections act as domid (repeatable)")
	flag.Parse()
	if *socket == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: fake-xenstored -socket PATH [-domain DOMID=PATH]... [-dump] [-v]")
		os.Exit(2)
	}
	s := xsfake.New()
	if *verbose {
		s.SetLog(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	}
	if err := s.Listen(*socket, 0); err != nil {
		fmt.Fprintln(os.Stderr, "fake-xenstored:", err)
		os.Exit(1)
	}
	for _, d := range doms {
		id, path, ok := strings.Cut(d, "=")
		n, err := strconv.ParseUint(id, 10, 16)
		if !ok || err != nil || path == "" {
			fmt.Fprintf(os.Stderr, "fake-xenstored: -domain %q: want DOMID=PATH with DOMID 0..65535\n", d)
			os.Exit(2)
		}
		if err := s.Listen(path, uint32(n)); err != nil {
			fmt.Fprintln(os.Stderr, "fake-xenstored:", err)
			os.Exit(1)
		}
		// A domain with its own connection is a live one (XS_IS_DOMAIN_
		// INTRODUCED says so): a backend started later must not take its
		// vhosts for a dead domain's.
		s.IntroduceDomain(uint32(n))
	}
	fmt.Println("ready", *socket)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	s.Close()
	if *dump {
		fmt.Print(s.Dump())
	}
}
