// Package xswire encodes and decodes the xenstore wire protocol of
// <xen/io/xs_wire.h>: a 16-byte header {type, req_id, tx_id, len} in host
// byte order followed by len bytes of payload (at most PayloadMax), usually a
// list of nul-terminated strings. Replies echo the request's type, req_id and
// tx_id; failures come back as type Error with an errno name ("ENOENT") as
// payload; watch firings arrive unsolicited as WatchEvent "path\0token\0".
//
// The decoder is written for hostile input (a guest can write anything on its
// ring): it never trusts len beyond PayloadMax and never panics.
package xswire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"
)

// Op is a message type (enum xsd_sockmsg_type).
type Op uint32

// Message types, numbered as in xs_wire.h (Xen 4.17). Number 20 was
// XS_RESTRICT and is gone.
const (
	Control            Op = 0 // XS_CONTROL (was XS_DEBUG)
	Directory          Op = 1
	Read               Op = 2
	GetPerms           Op = 3
	Watch              Op = 4
	Unwatch            Op = 5
	TransactionStart   Op = 6
	TransactionEnd     Op = 7
	Introduce          Op = 8
	Release            Op = 9
	GetDomainPath      Op = 10
	Write              Op = 11
	Mkdir              Op = 12
	Rm                 Op = 13
	SetPerms           Op = 14
	WatchEvent         Op = 15
	Error              Op = 16
	IsDomainIntroduced Op = 17
	Resume             Op = 18
	SetTarget          Op = 19
	ResetWatches       Op = 21
	DirectoryPart      Op = 22
	TypeCount          Op = 23     // number of valid types (XS_TYPE_COUNT)
	Invalid            Op = 0xffff // XS_INVALID
)

var opNames = map[Op]string{
	Control: "CONTROL", Directory: "DIRECTORY", Read: "READ", GetPerms: "GET_PERMS",
	Watch: "WATCH", Unwatch: "UNWATCH", TransactionStart: "TRANSACTION_START",
	TransactionEnd: "TRANSACTION_END", Introduce: "INTRODUCE", Release: "RELEASE",
	GetDomainPath: "GET_DOMAIN_PATH", Write: "WRITE", Mkdir: "MKDIR", Rm: "RM",
	SetPerms: "SET_PERMS", WatchEvent: "WATCH_EVENT", Error: "ERROR",
	IsDomainIntroduced: "IS_DOMAIN_INTRODUCED", Resume: "RESUME", SetTarget: "SET_TARGET",
	ResetWatches: "RESET_WATCHES", DirectoryPart: "DIRECTORY_PART",
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return "OP_" + strconv.FormatUint(uint64(o), 10)
}

// Sizes from xs_wire.h.
const (
	HeaderSize = 16
	// PayloadMax is XENSTORE_PAYLOAD_MAX: the largest payload either side
	// may send. xenstored drops a client that announces more.
	PayloadMax = 4096
	// AbsPathMax and RelPathMax are XENSTORE_ABS_PATH_MAX/REL_PATH_MAX.
	AbsPathMax = 3072
	RelPathMax = 2048
)

// Header is struct xsd_sockmsg.
type Header struct {
	Type  Op
	ReqID uint32
	TxID  uint32
	Len   uint32
}

// Msg is one message: header and payload (len(Payload) == int(Len) after
// decoding; Encode sets Len from the payload).
type Msg struct {
	Header
	Payload []byte
}

// ErrTooLong reports a header announcing more than PayloadMax bytes.
var ErrTooLong = errors.New("xenstore message payload longer than 4096 bytes")

// DecodeHeader reads a header from the first HeaderSize bytes of b.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, io.ErrUnexpectedEOF
	}
	ne := binary.NativeEndian
	return Header{
		Type:  Op(ne.Uint32(b[0:])),
		ReqID: ne.Uint32(b[4:]),
		TxID:  ne.Uint32(b[8:]),
		Len:   ne.Uint32(b[12:]),
	}, nil
}

// AppendHeader appends h in wire form.
func AppendHeader(dst []byte, h Header) []byte {
	ne := binary.NativeEndian
	dst = ne.AppendUint32(dst, uint32(h.Type))
	dst = ne.AppendUint32(dst, h.ReqID)
	dst = ne.AppendUint32(dst, h.TxID)
	return ne.AppendUint32(dst, h.Len)
}

// Encode returns m in wire form, with Len set from the payload. A payload
// over PayloadMax is refused, as libxenstore does (E2BIG).
func (m Msg) Encode() ([]byte, error) {
	if len(m.Payload) > PayloadMax {
		return nil, fmt.Errorf("xenstore %s: payload of %d bytes: %w", m.Type, len(m.Payload), syscall.E2BIG)
	}
	h := m.Header
	h.Len = uint32(len(m.Payload))
	b := AppendHeader(make([]byte, 0, HeaderSize+len(m.Payload)), h)
	return append(b, m.Payload...), nil
}

// ReadMsg reads one whole message from r (which may deliver it in pieces).
// A header announcing more than PayloadMax bytes yields ErrTooLong without
// reading (or allocating) the payload: the stream is then unusable.
func ReadMsg(r io.Reader) (Msg, error) {
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Msg{}, err
	}
	h, _ := DecodeHeader(hb[:])
	if h.Len > PayloadMax {
		return Msg{Header: h}, ErrTooLong
	}
	m := Msg{Header: h, Payload: make([]byte, h.Len)}
	if _, err := io.ReadFull(r, m.Payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Msg{}, err
	}
	return m, nil
}

// WriteMsg writes m to w in one Write call.
func WriteMsg(w io.Writer, m Msg) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Strings builds a payload of nul-terminated strings ("a\0b\0").
func Strings(s ...string) []byte {
	n := 0
	for _, x := range s {
		n += len(x) + 1
	}
	b := make([]byte, 0, n)
	for _, x := range s {
		b = append(b, x...)
		b = append(b, 0)
	}
	return b
}

// SplitStrings splits a payload into its nul-terminated strings. Bytes after
// the last nul (an unterminated tail) are returned as a final string, and
// ok reports whether the payload was cleanly terminated.
func SplitStrings(p []byte) (s []string, ok bool) {
	start := 0
	for i, c := range p {
		if c == 0 {
			s = append(s, string(p[start:i]))
			start = i + 1
		}
	}
	if start < len(p) {
		return append(s, string(p[start:])), false
	}
	return s, true
}

// errnoNames is xsd_errors[] of xs_wire.h, in its order.
var errnoNames = []struct {
	errno syscall.Errno
	name  string
}{
	{syscall.EINVAL, "EINVAL"}, {syscall.EACCES, "EACCES"}, {syscall.EEXIST, "EEXIST"},
	{syscall.EISDIR, "EISDIR"}, {syscall.ENOENT, "ENOENT"}, {syscall.ENOMEM, "ENOMEM"},
	{syscall.ENOSPC, "ENOSPC"}, {syscall.EIO, "EIO"}, {syscall.ENOTEMPTY, "ENOTEMPTY"},
	{syscall.ENOSYS, "ENOSYS"}, {syscall.EROFS, "EROFS"}, {syscall.EBUSY, "EBUSY"},
	{syscall.EAGAIN, "EAGAIN"}, {syscall.EISCONN, "EISCONN"}, {syscall.E2BIG, "E2BIG"},
	{syscall.EPERM, "EPERM"},
}

// ErrorName is the string xenstored sends for errno e. Errnos outside
// xsd_errors[] are sent as "EINVAL", as xenstored's send_error does.
func ErrorName(e syscall.Errno) string {
	for _, x := range errnoNames {
		if x.errno == e {
			return x.name
		}
	}
	return "EINVAL"
}

// ParseError maps an error payload ("ENOENT" with or without its nul) back
// to an errno. Unknown strings become EINVAL, as in libxenstore's get_error.
func ParseError(p []byte) syscall.Errno {
	s := string(p)
	if n := len(s); n > 0 && s[n-1] == 0 {
		s = s[:n-1]
	}
	for _, x := range errnoNames {
		if x.name == s {
			return x.errno
		}
	}
	return syscall.EINVAL
}

// ErrorMsg builds the XS_ERROR reply to req for errno e.
func ErrorMsg(req Header, e syscall.Errno) Msg {
	return Msg{Header: Header{Type: Error, ReqID: req.ReqID, TxID: req.TxID}, Payload: Strings(ErrorName(e))}
}

// Reply builds a reply of req's type carrying payload.
func Reply(req Header, payload []byte) Msg {
	return Msg{Header: Header{Type: req.Type, ReqID: req.ReqID, TxID: req.TxID}, Payload: payload}
}

// OK is the payload of a plain success reply ("OK\0").
var OK = []byte("OK\x00")

// Event builds an XS_WATCH_EVENT message for path and token.
func Event(path, token string) Msg {
	return Msg{Header: Header{Type: WatchEvent}, Payload: Strings(path, token)}
}
