// Package openapi holds agent-server's OpenAPI 3 document (openapi.yaml,
// written by hand and embedded) and serves it as YAML and JSON; the
// reference page that renders it (/docs/) is served by internal/console.
//
// The api package's golden test compares [Doc.Operations] with the routes
// it registers, so the document cannot drift from the code.
package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed openapi.yaml
var source []byte

// Doc is the parsed document. It is immutable after Load and safe for
// concurrent use.
type Doc struct {
	yaml []byte
	json []byte
	tree map[string]any
	ops  []string
}

// Load parses the embedded document.
func Load() (*Doc, error) {
	return parse(source)
}

// methods are the OpenAPI operation keys of a path item, in display order.
var methods = []string{"get", "put", "post", "delete", "patch", "head", "options"}

func parse(src []byte) (*Doc, error) {
	var tree map[string]any
	if err := yaml.Unmarshal(src, &tree); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	if v, _ := tree["openapi"].(string); !strings.HasPrefix(v, "3.") {
		return nil, fmt.Errorf("openapi: not an OpenAPI 3 document (openapi: %v)", tree["openapi"])
	}
	paths, ok := tree["paths"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("openapi: no paths")
	}
	d := &Doc{yaml: src, tree: tree}
	for p, item := range paths {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("openapi: path %s: not a mapping", p)
		}
		pattern := p
		if p == "/" { // ServeMux's pattern for exactly "/"
			pattern = "/{$}"
		}
		for _, meth := range methods {
			if _, ok := m[meth]; ok {
				d.ops = append(d.ops, strings.ToUpper(meth)+" "+pattern)
			}
		}
	}
	slices.Sort(d.ops)
	var err error
	if d.json, err = json.MarshalIndent(tree, "", "  "); err != nil {
		return nil, fmt.Errorf("openapi: to JSON: %w", err)
	}
	return d, nil
}

// Operations returns every operation as "METHOD /path" (the ServeMux pattern
// form, {param} included), sorted.
func (d *Doc) Operations() []string { return slices.Clone(d.ops) }

// JSON returns the document as JSON.
func (d *Doc) JSON() []byte { return d.json }

// YAML returns the document as written.
func (d *Doc) YAML() []byte { return d.yaml }

// ServeJSON writes the JSON document.
func (d *Doc) ServeJSON(w http.ResponseWriter, _ *http.Request) {
	write(w, "application/json", d.json)
}

// ServeYAML writes the YAML document.
func (d *Doc) ServeYAML(w http.ResponseWriter, _ *http.Request) {
	write(w, "application/yaml", d.yaml)
}

func write(w http.ResponseWriter, ctype string, b []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}
