package main

// The header of an xl save image (`xl save`, `xl migrate`'s stream,
// xendomains' /var/lib/xen/save): xl's own 48-byte header, then the
// "optional data" whose first item is the domain configuration
// (tools/xl/xl.h, struct save_file_header). In Xen 4.17 xl always stores
// the configuration as libxl's JSON, even when `xl save` was given a config
// file, so it never holds the vscsi= list: the image says only which
// domain it is (name and uuid), and xl-vscsi restore finds the domain's xl
// config by those, as vscsi-autoattach does.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

const (
	saveMagic      = "Xen saved domain, xl format\n \x00 \r"
	saveHeaderSize = 32 + 4*4
	saveByteOrder  = 0x01020304
	saveFlagJSON   = 1 << 0
	// maxSaveConfig bounds the configuration read from an image: libxl's
	// JSON of a domain is a few KiB.
	maxSaveConfig = 1 << 20
)

// saveIdentity is what a save image says about its domain.
type saveIdentity struct {
	Name string
	UUID string
}

// readSaveIdentity reads the domain name and uuid from the configuration
// in an xl save image, reading no more than the header and the config.
func readSaveIdentity(path string) (saveIdentity, error) {
	f, err := os.Open(path)
	if err != nil {
		return saveIdentity{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return saveIdentity{}, err
	}
	if !st.Mode().IsRegular() {
		return saveIdentity{}, fmt.Errorf("%s: not a regular file (%s): xl-vscsi restore needs a save image it can read twice", path, st.Mode().Type())
	}
	id, err := parseSaveHeader(f)
	if err != nil {
		return saveIdentity{}, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

func parseSaveHeader(r io.Reader) (saveIdentity, error) {
	var hdr [saveHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return saveIdentity{}, fmt.Errorf("not an xl save image: reading its %d-byte header: %w", saveHeaderSize, err)
	}
	if string(hdr[:32]) != saveMagic {
		return saveIdentity{}, errors.New("not an xl save image (wrong magic)")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch binary.LittleEndian.Uint32(hdr[32:]) {
	case saveByteOrder:
	case 0x04030201:
		bo = binary.BigEndian
	default:
		return saveIdentity{}, fmt.Errorf("xl save image with unknown byte order mark %#x", binary.LittleEndian.Uint32(hdr[32:]))
	}
	mandatory := bo.Uint32(hdr[36:])
	optLen := bo.Uint32(hdr[44:])
	if optLen < 4 {
		return saveIdentity{}, errors.New("the save image holds no domain configuration")
	}
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return saveIdentity{}, fmt.Errorf("reading the configuration size: %w", err)
	}
	size := bo.Uint32(n[:])
	if size == 0 {
		return saveIdentity{}, errors.New("the save image holds no domain configuration")
	}
	if size > maxSaveConfig || size > optLen-4 {
		return saveIdentity{}, fmt.Errorf("configuration of %d bytes in the save image (optional data %d bytes, limit %d)", size, optLen, maxSaveConfig)
	}
	cfg := make([]byte, size)
	if _, err := io.ReadFull(r, cfg); err != nil {
		return saveIdentity{}, fmt.Errorf("reading the configuration: %w", err)
	}
	if mandatory&saveFlagJSON == 0 {
		return saveIdentity{}, errors.New("the save image's configuration is not libxl JSON (an xl older than 4.7 wrote it); give the config file")
	}
	var c struct {
		CInfo struct {
			Name string `json:"name"`
			UUID string `json:"uuid"`
		} `json:"c_info"`
	}
	if err := json.Unmarshal(bytes.TrimRight(cfg, "\x00"), &c); err != nil {
		return saveIdentity{}, fmt.Errorf("the save image's configuration: %w", err)
	}
	if c.CInfo.Name == "" {
		return saveIdentity{}, errors.New("the save image's configuration names no domain (c_info.name)")
	}
	return saveIdentity{Name: c.CInfo.Name, UUID: c.CInfo.UUID}, nil
}
