package openapi

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	ops := d.Operations()
	for _, want := range []string{"GET /api/agents/{id}", "PUT /api/agents/{id}/labels", "GET /healthz", "GET /docs/"} {
		found := false
		for _, o := range ops {
			found = found || o == want
		}
		if !found {
			t.Errorf("operation %q missing from %q", want, ops)
		}
	}
	if a, ok := d.Auth("GET /api/file/{id}/download"); !ok || a.Scope != "files:read" || !a.Audited {
		t.Errorf("Auth(download) = %+v %v", a, ok)
	}
	if a, ok := d.Auth("GET /healthz"); !ok || a.Scope != "public" || a.Audited {
		t.Errorf("Auth(healthz) = %+v %v", a, ok)
	}
	var v map[string]any
	if err := json.Unmarshal(d.JSON(), &v); err != nil || v["openapi"] != "3.0.3" {
		t.Fatalf("JSON: %v %v", err, v["openapi"])
	}

	for _, want := range []string{"GET /{$}", "GET /ui/"} {
		if !slices.Contains(ops, want) {
			t.Errorf("operation %q missing (the path / is ServeMux's /{$})", want)
		}
	}
	rec := httptest.NewRecorder()
	d.ServeYAML(rec, nil)
	if !strings.HasPrefix(rec.Body.String(), "openapi: 3.0.3") || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Errorf("yaml: %q %q", rec.Header(), rec.Body.String()[:20])
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, err string }{
		{"openapi: \"2.0\"\npaths: {}\n", "openapi: not an OpenAPI 3 document (openapi: 2.0)"},
		{"openapi: 3.0.3\n", "openapi: no paths"},
		{"openapi: 3.0.3\npaths:\n  /x: 1\n", "openapi: path /x: not a mapping"},
		{"openapi: 3.0.3\npaths:\n  /x:\n    get: {summary: x}\n", "openapi: GET /x: no x-scope (a scope, authenticated or public)"},
		{"openapi: [\n", "openapi: yaml: line 1"},
	}
	for _, tt := range tests {
		if _, err := parse([]byte(tt.in)); err == nil || !strings.HasPrefix(err.Error(), tt.err) {
			t.Errorf("parse(%q) = %v, want %q", tt.in, err, tt.err)
		}
	}
}
