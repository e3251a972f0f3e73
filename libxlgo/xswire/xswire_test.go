package xswire

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"testing/iotest"
)

func TestEncodeByteExact(t *testing.T) {
	m := Msg{Header: Header{Type: Read, ReqID: 7, TxID: 3}, Payload: Strings("/a")}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// x86/arm64 little-endian host order.
	want := []byte{2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, '/', 'a', 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("Encode = %v, want %v", b, want)
	}
	got, err := ReadMsg(iotest.OneByteReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != Read || got.ReqID != 7 || got.TxID != 3 || got.Len != 3 || string(got.Payload) != "/a\x00" {
		t.Fatalf("round trip gave %+v", got)
	}
}

func TestPayloadLimit(t *testing.T) {
	if _, err := (Msg{Payload: make([]byte, PayloadMax)}).Encode(); err != nil {
		t.Fatalf("4096 bytes refused: %v", err)
	}
	if _, err := (Msg{Payload: make([]byte, PayloadMax+1)}).Encode(); !errors.Is(err, syscall.E2BIG) {
		t.Fatalf("4097 bytes: err %v, want E2BIG", err)
	}
	hdr := AppendHeader(nil, Header{Type: Write, Len: PayloadMax + 1})
	if _, err := ReadMsg(bytes.NewReader(hdr)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("oversized header: err %v, want ErrTooLong", err)
	}
	if _, err := ReadMsg(bytes.NewReader(AppendHeader(nil, Header{Len: 5}))); err != io.ErrUnexpectedEOF {
		t.Fatalf("short payload: err %v", err)
	}
}

func TestErrors(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.ENOENT, syscall.EACCES, syscall.EAGAIN, syscall.E2BIG, syscall.EPERM} {
		if got := ParseError([]byte(ErrorName(e) + "\x00")); got != e {
			t.Errorf("%v -> %q -> %v", e, ErrorName(e), got)
		}
	}
	if ErrorName(syscall.ENOENT) != "ENOENT" || ErrorName(syscall.ENOTTY) != "EINVAL" {
		t.Errorf("names: %q %q", ErrorName(syscall.ENOENT), ErrorName(syscall.ENOTTY))
	}
	if ParseError([]byte("EWHAT")) != syscall.EINVAL {
		t.Errorf("unknown error string not EINVAL")
	}
	m := ErrorMsg(Header{Type: Read, ReqID: 9}, syscall.ENOENT)
	if m.Type != Error || m.ReqID != 9 || string(m.Payload) != "ENOENT\x00" {
		t.Errorf("ErrorMsg = %+v", m)
	}
}

func TestStrings(t *testing.T) {
	s, ok := SplitStrings(Strings("/a", "tok"))
	if !ok || len(s) != 2 || s[0] != "/a" || s[1] != "tok" {
		t.Fatalf("SplitStrings = %q %v", s, ok)
	}
	s, ok = SplitStrings([]byte("x\x00tail"))
	if ok || len(s) != 2 || s[1] != "tail" {
		t.Fatalf("unterminated: %q %v", s, ok)
	}
	if s, ok := SplitStrings(nil); !ok || len(s) != 0 {
		t.Fatalf("empty: %q %v", s, ok)
	}
	if Op(99).String() != "OP_99" || DirectoryPart.String() != "DIRECTORY_PART" {
		t.Errorf("Op names")
	}
}

// FuzzDecode: any byte stream decodes to messages or an error, never a
// panic, and every decoded message re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	seed := func(m Msg) []byte { b, _ := m.Encode(); return b }
	f.Add(seed(Msg{Header: Header{Type: Write, ReqID: 1}, Payload: []byte("/a\x00value")}))
	f.Add(seed(Event("/local/domain/1/device", "tok")))
	f.Add(AppendHeader(nil, Header{Type: Read, Len: 0xffffffff}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			m, err := ReadMsg(r)
			if err != nil {
				return
			}
			if int(m.Len) != len(m.Payload) || m.Len > PayloadMax {
				t.Fatalf("decoded inconsistent message %+v", m.Header)
			}
			b, err := m.Encode()
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if h, _ := DecodeHeader(b); h != m.Header {
				t.Fatalf("header %+v re-encoded as %+v", m.Header, h)
			}
			SplitStrings(m.Payload)
			ParseError(m.Payload)
		}
	})
}
