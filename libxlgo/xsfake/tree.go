package xsfake

import (
	"strconv"
	"strings"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// node is one xenstore node. Nodes are immutable once stored in a tree map:
// every change stores a new *node. That makes a transaction's snapshot a
// shallow copy of the map, and conflict detection a pointer comparison.
type node struct {
	value    []byte
	perms    xenif.Perms
	children []string // in creation order, as xenstored lists them
	gen      uint64   // changes whenever the node (or its child list) does
}

func (n *node) clone() *node {
	c := *n
	c.value = append([]byte(nil), n.value...)
	c.perms = append(xenif.Perms(nil), n.perms...)
	c.children = append([]string(nil), n.children...)
	return &c
}

// Access bits as xenstored computes them for a connection (perm_for_conn).
const (
	accRead  = 1
	accWrite = 2
	accOwner = 8
)

// access is xenstored's perm_for_conn: dom0 and the owner get everything;
// otherwise the domain's own entry, else the default (first) entry's bits.
func access(domid uint32, p xenif.Perms) int {
	if domid == 0 || len(p) == 0 || p[0].Domid == domid {
		return accRead | accWrite | accOwner
	}
	for _, e := range p[1:] {
		if e.Domid == domid {
			return int(e.Bits)
		}
	}
	return int(p[0].Bits)
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// isChild reports whether child is parent or below it (xenstored is_child).
func isChild(child, parent string) bool {
	if parent == "/" {
		return strings.HasPrefix(child, "/")
	}
	return child == parent || strings.HasPrefix(child, parent+"/")
}

// validPath is xenstored's is_valid_nodename for a canonical (absolute) path.
func validPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	if p != "/" && strings.HasSuffix(p, "/") {
		return false
	}
	if strings.Contains(p, "//") {
		return false
	}
	// The length quota counts only what follows /local/domain/<domid>/.
	off := 0
	if rest, ok := strings.CutPrefix(p, "/local/domain/"); ok {
		if i := strings.IndexByte(rest, '/'); i > 0 && i <= 5 {
			if _, err := strconv.ParseUint(rest[:i], 10, 32); err == nil {
				off = len("/local/domain/") + i + 1
			}
		}
	}
	if len(p) > off+2048 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '/' || c == '_' || c == '@':
		default:
			return false
		}
	}
	return true
}

// fire is one pending watch firing: name changed; exact limits it to
// watches on exactly name (used for the descendants of a removed node);
// perms decide which connections may see it.
type fire struct {
	name   string
	exact  bool
	perms  xenif.Perms
	pperms xenif.Perms // the parent's, for xenstored's watch_permitted
}

// view is the tree an operation works on: the live tree, or a
// transaction's private copy that records what it touched.
type view struct {
	nodes   map[string]*node
	touched map[string]bool // nil outside a transaction
	written map[string]bool
	fires   []fire
	gen     *uint64
}

func (v *view) get(p string) *node {
	if v.touched != nil {
		v.touched[p] = true
	}
	return v.nodes[p]
}

func (v *view) put(p string, n *node) {
	*v.gen++
	n.gen = *v.gen
	v.nodes[p] = n
	if v.touched != nil {
		v.touched[p] = true
		v.written[p] = true
	}
}

func (v *view) del(p string) {
	delete(v.nodes, p)
	if v.touched != nil {
		v.touched[p] = true
		v.written[p] = true
	}
}
