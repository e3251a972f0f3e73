// Package strictyaml decodes the project's YAML configurations as strictly
// as their documentation promises: one document, no key given twice, no
// unknown key. yaml.v3 alone takes the last of two equal keys when it
// builds a yaml.Node, and a Decoder reads one document and leaves the rest
// of the input unread, so a second document (even one holding a refused
// "allow_paths: [/]") was silently ignored (issue 14).
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// Document parses data as at most one YAML document and returns the
// document's root node (nil for empty input). A key given twice in any
// mapping and a second document are errors naming their lines.
func Document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("after the first document: %w", err)
	default:
		return nil, fmt.Errorf("line %d: a second YAML document (\"---\"): a configuration is one document", extra.Line)
	}
	if err := noDuplicates(&doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// noDuplicates walks n (not through aliases: the anchored node is checked
// where it is defined) and refuses a mapping key given twice.
func noDuplicates(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		first := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			if line, ok := first[k.Value]; ok {
				return fmt.Errorf("line %d: key %q given twice (first at line %d)", k.Line, k.Value, line)
			}
			first[k.Value] = k.Line
		}
	}
	if n.Kind == yaml.AliasNode {
		return nil
	}
	for _, c := range n.Content {
		if err := noDuplicates(c); err != nil {
			return err
		}
	}
	return nil
}

// Decode checks data with Document, then decodes it into v refusing keys v
// has no field for. Empty input leaves v as it is.
func Decode(data []byte, v any) error {
	root, err := Document(data)
	if err != nil || root == nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
