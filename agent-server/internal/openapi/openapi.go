// Package openapi holds agent-server's OpenAPI 3 document (openapi.yaml,
// written by hand and embedded) and serves it as YAML and JSON; the
// reference page that renders it (/docs/) is served by internal/console.
//
// The api package's golden test compares [Doc.Operations] with the routes
// it registers, so the document cannot drift from the code.
//
// Every operation carries its authorization rule: x-scope is the scope a
// token needs, "authenticated" (any valid token) or "public" (no token);
// x-audited: true marks the operations whose every call is audited. The
// authorization test walks the document and checks both against the
// server.
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
	auth map[string]OpAuth
}

// OpAuth is the authorization rule the document gives an operation.
type OpAuth struct {
	Scope   string // a scope name, "authenticated" or "public"
	Audited bool
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
	d := &Doc{yaml: src, tree: tree, auth: map[string]OpAuth{}}
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
			raw, ok := m[meth]
			if !ok {
				continue
			}
			name := strings.ToUpper(meth) + " " + pattern
			d.ops = append(d.ops, name)
			op, _ := raw.(map[string]any)
			scope, _ := op["x-scope"].(string)
			if scope == "" {
				return nil, fmt.Errorf("openapi: %s: no x-scope (a scope, authenticated or public)", name)
			}
			audited, _ := op["x-audited"].(bool)
			d.auth[name] = OpAuth{Scope: scope, Audited: audited}
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

// Auth returns the authorization rule of operation op ("METHOD /path").
func (d *Doc) Auth(op string) (OpAuth, bool) {
	a, ok := d.auth[op]
	return a, ok
}

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
