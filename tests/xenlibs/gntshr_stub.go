//go:build !(linux && cgo)

package main

import "errors"

type sharer struct{}

func openSharer() (*sharer, error) {
	return nil, errors.New("gntshr: built without cgo or not on Linux")
}

func (s *sharer) share(uint32, int, bool) ([]byte, []uint32, error) {
	return nil, nil, errors.ErrUnsupported
}
func (s *sharer) unshare([]byte) error { return errors.ErrUnsupported }
func (s *sharer) close()               {}
