//go:build cgo && linux

// Package layout reads struct sg_io_hdr's offsets and sizes, and the SG_*
// constants, from the real <scsi/sg.h> with cgo, so the test next to it can
// compare them with backend/sgio's hand-written header. It exists only for
// that test: cgo is not allowed in backend/ or in _test.go files.
package layout

/*
#include <stddef.h>
#include <scsi/sg.h>

struct field { const char *name; long off, size; };

#define F(f) { #f, (long)offsetof(sg_io_hdr_t, f), (long)sizeof(((sg_io_hdr_t *)0)->f) }
#define K(name) { #name, (long)(name), 0 }

static const struct field fields[] = {
	F(interface_id), F(dxfer_direction), F(cmd_len), F(mx_sb_len), F(iovec_count),
	F(dxfer_len), F(dxferp), F(cmdp), F(sbp), F(timeout), F(flags), F(pack_id),
	F(usr_ptr), F(status), F(masked_status), F(msg_status), F(sb_len_wr),
	F(host_status), F(driver_status), F(resid), F(duration), F(info),
	{ "sizeof", 0, (long)sizeof(sg_io_hdr_t) },
};

static const struct field consts[] = {
	K(SG_IO), K(SG_GET_VERSION_NUM), K(SG_SCSI_RESET), K(SG_SCSI_RESET_DEVICE),
	K(SG_DXFER_NONE), K(SG_DXFER_TO_DEV), K(SG_DXFER_FROM_DEV),
};

static int nfields(void) { return sizeof(fields) / sizeof(fields[0]); }
static int nconsts(void) { return sizeof(consts) / sizeof(consts[0]); }
static const struct field *field_at(int i) { return &fields[i]; }
static const struct field *const_at(int i) { return &consts[i]; }
*/
import "C"

// Field is one member of sg_io_hdr_t as the C compiler lays it out.
type Field struct {
	Name      string
	Off, Size uintptr
}

// Fields returns sg_io_hdr_t's members in declaration order, then "sizeof".
func Fields() []Field {
	out := make([]Field, 0, int(C.nfields()))
	for i := 0; i < int(C.nfields()); i++ {
		f := C.field_at(C.int(i))
		out = append(out, Field{C.GoString(f.name), uintptr(f.off), uintptr(f.size)})
	}
	return out
}

// Consts returns the SG_* constants by name.
func Consts() map[string]int64 {
	m := map[string]int64{}
	for i := 0; i < int(C.nconsts()); i++ {
		k := C.const_at(C.int(i))
		m[C.GoString(k.name)] = int64(k.off)
	}
	return m
}
