// Package cfgparse reads xl domain configuration files the way libxlutil does
// and turns their vscsi=[...] entries into typed values and then into the
// xenstore trees of the vscsiif protocol. It is pure Go: no cgo, no xenstore.
package cfgparse
