package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/backend/vscsiif"
)

// File layout.
const (
	headerSize = 4096
	// EntrySize holds the tag (8), the consumed-at index (4), 4 reserved
	// bytes and the request copy, rounded up to 64-byte lines.
	EntrySize = 320
	entryReq  = 16

	offMagic     = 0
	offVersion   = 8
	offSlots     = 12
	offEntrySize = 16
	offDomid     = 20
	offRingRef   = 24
	offPort      = 28
	offReqCons   = 32
	offRingSize  = 36

	version = 1
	// MaxSlots bounds the slot count a file may claim (a datapath has
	// twice the ring's 16 slots).
	MaxSlots = 1024
)

var magic = [8]byte{'G', 'V', 'S', 'C', 'J', 'R', 'N', 'L'}

// Entry states (the tag's low byte).
const (
	StateFree     = 0
	StateConsumed = 1 // taken from the ring, not answered
	StateAnswered = 2 // response written at RspIndex, maybe not published
)

// Identity names the ring a journal belongs to.
type Identity struct {
	Domid    uint32 // frontend domain
	RingRef  uint32
	Port     uint32 // the frontend's event-channel port
	Slots    int    // datapath slots (entries)
	RingSize int    // ring slots
}

func (id Identity) String() string {
	return fmt.Sprintf("dom %d ring-ref %d port %d, %d slots", id.Domid, id.RingRef, id.Port, id.Slots)
}

// File is an open journal, mapped shared. Its methods are called with the
// connection's lock held; they do no system call.
type File struct {
	path  string
	fd    int
	mem   []byte
	slots int
}

func fileSize(slots int) int { return headerSize + slots*EntrySize }

// Create writes a fresh journal for id at path (no entries, req_cons =
// reqCons) and maps it. It replaces any file there atomically (a new file
// renamed over it), so a crash while creating leaves the old file or the
// new one, never a mix.
func Create(path string, id Identity, reqCons uint32) (*File, error) {
	if id.Slots <= 0 || id.Slots > MaxSlots {
		return nil, fmt.Errorf("journal: %d slots: want 1..%d", id.Slots, MaxSlots)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	buf := make([]byte, fileSize(id.Slots))
	copy(buf[offMagic:], magic[:])
	put32(buf, offVersion, version)
	put32(buf, offSlots, uint32(id.Slots))
	put32(buf, offEntrySize, EntrySize)
	put32(buf, offDomid, id.Domid)
	put32(buf, offRingRef, id.RingRef)
	put32(buf, offPort, id.Port)
	put32(buf, offReqCons, reqCons)
	put32(buf, offRingSize, uint32(id.RingSize))
	tmp := path + ".new"
	// The whole file is written (not sparse): stores into a tmpfs page
	// that does not exist yet could SIGBUS when tmpfs is full.
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("journal: %w", err)
	}
	return mapFile(path, id.Slots)
}

func mapFile(path string, slots int) (*File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != int64(fileSize(slots)) {
		unix.Close(fd)
		if err == nil {
			err = fmt.Errorf("size %d, want %d", st.Size, fileSize(slots))
		}
		return nil, fmt.Errorf("journal: %s: %w", path, err)
	}
	mem, err := unix.Mmap(fd, 0, fileSize(slots), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("journal: mmap %s: %w", path, err)
	}
	return &File{path: path, fd: fd, mem: mem, slots: slots}, nil
}

// Entry is one journaled request, from a private copy of the file.
type Entry struct {
	Slot     int
	State    uint8
	Index    uint32 // ring index the request was consumed at
	RspIndex uint32 // response index (StateAnswered)
	Request  [vscsiif.RequestSize]byte
}

// Snapshot is a private, checked copy of a journal file's contents.
type Snapshot struct {
	ID      Identity
	ReqCons uint32
	Entries []Entry // the non-free entries, by slot
}

// ErrMismatch wraps every reason to discard a journal.
var ErrMismatch = errors.New("journal does not match the ring")

// Open reads the journal at path into a private copy, checks that it
// belongs to id and maps the file for the resumed connection. The file is
// the host's, not the guest's, but it may be torn or left by another
// version: every field is checked before use. A missing file is
// os.ErrNotExist; anything unusable wraps ErrMismatch.
func Open(path string, id Identity) (*File, Snapshot, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, Snapshot{}, fmt.Errorf("journal: %w", err)
	}
	snap, err := parse(raw, id)
	if err != nil {
		return nil, Snapshot{}, err
	}
	f, err := mapFile(path, id.Slots)
	if err != nil {
		return nil, Snapshot{}, err
	}
	return f, snap, nil
}

// ReadIdentity says which ring the journal at path belongs to (the backend
// tells a frontend that made a new ring while no backend ran from one that
// waits for its old ring to be served again).
func ReadIdentity(path string) (Identity, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("journal: %w", err)
	}
	if len(raw) < headerSize || !bytes.Equal(raw[offMagic:offMagic+8], magic[:]) || get32(raw, offVersion) != version {
		return Identity{}, fmt.Errorf("%w: %s is not a journal", ErrMismatch, path)
	}
	return Identity{Domid: get32(raw, offDomid), RingRef: get32(raw, offRingRef), Port: get32(raw, offPort),
		Slots: int(get32(raw, offSlots)), RingSize: int(get32(raw, offRingSize))}, nil
}

func parse(raw []byte, id Identity) (Snapshot, error) {
	if len(raw) < headerSize || !bytes.Equal(raw[offMagic:offMagic+8], magic[:]) {
		return Snapshot{}, fmt.Errorf("%w: not a journal (%d bytes)", ErrMismatch, len(raw))
	}
	if v := get32(raw, offVersion); v != version {
		return Snapshot{}, fmt.Errorf("%w: version %d, want %d", ErrMismatch, v, version)
	}
	got := Identity{Domid: get32(raw, offDomid), RingRef: get32(raw, offRingRef), Port: get32(raw, offPort),
		Slots: int(get32(raw, offSlots)), RingSize: int(get32(raw, offRingSize))}
	if got != id {
		return Snapshot{}, fmt.Errorf("%w: journal of %v, ring is %v", ErrMismatch, got, id)
	}
	if es := get32(raw, offEntrySize); es != EntrySize || len(raw) != fileSize(id.Slots) {
		return Snapshot{}, fmt.Errorf("%w: entry size %d, file %d bytes", ErrMismatch, es, len(raw))
	}
	s := Snapshot{ID: got, ReqCons: get32(raw, offReqCons)}
	for k := 0; k < id.Slots; k++ {
		e := raw[headerSize+k*EntrySize:][:EntrySize]
		tag := get64(e, 0)
		st := uint8(tag)
		if st == StateFree {
			continue
		}
		if st != StateConsumed && st != StateAnswered || tag>>8&0xffffff != 0 {
			return Snapshot{}, fmt.Errorf("%w: slot %d has tag %#x", ErrMismatch, k, tag)
		}
		en := Entry{Slot: k, State: st, Index: get32(e, 8)}
		if st == StateAnswered {
			en.RspIndex = uint32(tag >> 32)
		} else if uint32(tag>>32) != en.Index {
			return Snapshot{}, fmt.Errorf("%w: slot %d consumed at %d, tag says %d", ErrMismatch, k, en.Index, tag>>32)
		}
		copy(en.Request[:], e[entryReq:])
		s.Entries = append(s.Entries, en)
	}
	return s, nil
}

// Redo decides, against the live ring's rsp_prod and req_prod, which
// entries must be executed again (package doc): it returns them in ring
// order, or an error wrapping ErrMismatch when the journal and the ring do
// not fit together.
func (s Snapshot) Redo(rspProd, reqProd uint32) ([]Entry, error) {
	c, size := s.ReqCons, uint32(s.ID.RingSize)
	if reqProd-rspProd > size {
		return nil, fmt.Errorf("%w: req_prod %d is more than %d ahead of rsp_prod %d", ErrMismatch, reqProd, size, rspProd)
	}
	if c-rspProd > reqProd-rspProd {
		return nil, fmt.Errorf("%w: journal req_cons %d outside rsp_prod %d .. req_prod %d", ErrMismatch, c, rspProd, reqProd)
	}
	var redo []Entry
	seen := make(map[uint32]bool, len(s.Entries))
	seenRsp := make(map[uint32]bool)
	for _, e := range s.Entries {
		if seen[e.Index] {
			return nil, fmt.Errorf("%w: two slots consumed at ring index %d", ErrMismatch, e.Index)
		}
		seen[e.Index] = true
		age := c - e.Index // 1 for the last request consumed
		journaled := age != 0 && age < 1<<31
		switch e.State {
		case StateConsumed:
			if journaled {
				redo = append(redo, e)
			}
		case StateAnswered:
			if !journaled {
				return nil, fmt.Errorf("%w: slot %d answered but consumed at %d, not before req_cons %d", ErrMismatch, e.Slot, e.Index, c)
			}
			if e.RspIndex-rspProd < c-rspProd {
				if seenRsp[e.RspIndex] {
					return nil, fmt.Errorf("%w: two responses written at index %d", ErrMismatch, e.RspIndex)
				}
				seenRsp[e.RspIndex] = true
				redo = append(redo, e) // written, never published
			}
		}
	}
	if uint32(len(redo)) != c-rspProd {
		return nil, fmt.Errorf("%w: %d requests unanswered in the journal, the ring has %d (req_cons %d, rsp_prod %d)",
			ErrMismatch, len(redo), c-rspProd, c, rspProd)
	}
	sort.Slice(redo, func(i, j int) bool { return c-redo[i].Index > c-redo[j].Index })
	return redo, nil
}

// Consumed records that slot holds req, consumed at ring index idx.
func (f *File) Consumed(slot int, idx uint32, req []byte) {
	e := f.entry(slot)
	copy(e[entryReq:entryReq+vscsiif.RequestSize], req)
	*(*uint32)(unsafe.Pointer(&e[8])) = idx
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&e[0])), uint64(idx)<<32|StateConsumed)
}

// Answered records that slot's response was written at response index j.
func (f *File) Answered(slot int, j uint32) {
	e := f.entry(slot)
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&e[0])), uint64(j)<<32|StateAnswered)
}

// Free records that slot's response was published (or that it holds
// nothing).
func (f *File) Free(slot int) {
	e := f.entry(slot)
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&e[0])), StateFree)
}

// SetReqCons records that every request before ring index c is journaled.
func (f *File) SetReqCons(c uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&f.mem[offReqCons])), c)
}

// Slots is the number of entries.
func (f *File) Slots() int { return f.slots }

// Path is the file's path.
func (f *File) Path() string { return f.path }

func (f *File) entry(slot int) []byte {
	return f.mem[headerSize+slot*EntrySize:][:EntrySize:EntrySize]
}

// Close unmaps the file and keeps it (for the next process).
func (f *File) Close() error {
	if f == nil || f.mem == nil {
		return nil
	}
	err := unix.Munmap(f.mem)
	f.mem = nil
	if cerr := unix.Close(f.fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: close %s: %w", f.path, err)
	}
	return nil
}

// Remove closes the file and deletes it: the connection is over.
func (f *File) Remove() error {
	if f == nil {
		return nil
	}
	err := f.Close()
	if rerr := os.Remove(f.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = fmt.Errorf("journal: %w", rerr)
	}
	return err
}

func put32(b []byte, off int, v uint32) { binary.NativeEndian.PutUint32(b[off:], v) }
func get32(b []byte, off int) uint32    { return binary.NativeEndian.Uint32(b[off:]) }
func get64(b []byte, off int) uint64    { return binary.NativeEndian.Uint64(b[off:]) }
