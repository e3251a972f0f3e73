package main

// vscsi_set_log: the library's log messages to a C function. Every
// handle's and embedded backend's hclog logger is wrapped in cLogger,
// which also hands each message at or above the sink's level to the one
// process-wide sink, formatted as "<name>: <message>: key=value ...". The
// sink is an atomic pointer, nil (off) until vscsi_set_log sets it:
// nothing of this runs at load.

import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/hashicorp/go-hclog"
)

type logSink struct {
	fn    unsafe.Pointer // vscsi_log_fn *
	user  unsafe.Pointer
	level hclog.Level
}

var (
	sink   atomic.Pointer[logSink]
	sinkMu sync.Mutex // one call of the C function at a time; vscsi_set_log waits for it
)

//export vscsi_set_log
func vscsi_set_log(fn unsafe.Pointer, level C.int, user unsafe.Pointer) (rc C.int) {
	defer recoverExport(0, &rc, "vscsi_set_log")
	if fn != nil && (level < C.int(hclog.Trace) || level > C.int(hclog.Error)) {
		setOpenErr(fmt.Sprintf("vscsi_set_log: level %d: want %d (VSCSI_LOG_TRACE) to %d (VSCSI_LOG_ERROR)", level, hclog.Trace, hclog.Error))
		return -C.int(syscall.EINVAL)
	}
	var s *logSink
	if fn != nil {
		s = &logSink{fn: fn, user: user, level: hclog.Level(level)}
	}
	sinkMu.Lock()
	sink.Store(s)
	sinkMu.Unlock()
	return 0
}

// toSink hands one message to the C sink if one is set and level reaches it.
func toSink(level hclog.Level, name, msg string, implied, args []any) {
	s := sink.Load()
	if s == nil || level < s.level {
		return
	}
	var b strings.Builder
	if name != "" {
		b.WriteString(name)
		b.WriteString(": ")
	}
	b.WriteString(msg)
	kv := append(append([]any(nil), implied...), args...)
	if len(kv) > 0 {
		b.WriteString(":")
	}
	for i := 0; i < len(kv); i += 2 {
		if i+1 < len(kv) {
			fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
		} else {
			fmt.Fprintf(&b, " EXTRA_VALUE=%v", kv[i])
		}
	}
	sinkMu.Lock()
	defer sinkMu.Unlock()
	if s = sink.Load(); s == nil || level < s.level { // changed meanwhile
		return
	}
	callLog(s.fn, int(level), b.String(), s.user)
}

// cLogger is an hclog.Logger that also feeds the C sink.
type cLogger struct {
	hclog.Logger
	name    string
	implied []any
}

// withSink wraps base (nil: discard) so its messages also reach the sink.
func withSink(base hclog.Logger, name string) hclog.Logger {
	if base == nil {
		base = hclog.NewNullLogger()
	}
	return &cLogger{Logger: base, name: name}
}

func (l *cLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, args...)
	toSink(level, l.name, msg, l.implied, args)
}
func (l *cLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *cLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *cLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *cLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *cLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func sinkWants(level hclog.Level) bool {
	s := sink.Load()
	return s != nil && level >= s.level
}
func (l *cLogger) IsTrace() bool { return l.Logger.IsTrace() || sinkWants(hclog.Trace) }
func (l *cLogger) IsDebug() bool { return l.Logger.IsDebug() || sinkWants(hclog.Debug) }
func (l *cLogger) IsInfo() bool  { return l.Logger.IsInfo() || sinkWants(hclog.Info) }
func (l *cLogger) IsWarn() bool  { return l.Logger.IsWarn() || sinkWants(hclog.Warn) }
func (l *cLogger) IsError() bool { return l.Logger.IsError() || sinkWants(hclog.Error) }

func (l *cLogger) With(args ...any) hclog.Logger {
	return &cLogger{Logger: l.Logger.With(args...), name: l.name, implied: append(append([]any(nil), l.implied...), args...)}
}
func (l *cLogger) Named(name string) hclog.Logger {
	n := name
	if l.name != "" {
		n = l.name + "." + name
	}
	return &cLogger{Logger: l.Logger.Named(name), name: n, implied: l.implied}
}
func (l *cLogger) ResetNamed(name string) hclog.Logger {
	return &cLogger{Logger: l.Logger.ResetNamed(name), name: name, implied: l.implied}
}

// logInternal reports an internal error (a recovered panic) to the sink
// and stderr: it is a defect, and must be seen.
func logInternal(msg string, stack []byte) {
	fmt.Fprintf(os.Stderr, "govscsi: %s\n%s", msg, stack)
	toSink(hclog.Error, "govscsi", msg, nil, nil)
}
