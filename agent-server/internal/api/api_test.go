package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/config"
)

var timeTests = []struct {
	in   string
	want time.Time
	err  string
}{
	{"", time.Time{}, ""},
	{"2026-11-24T10:00:00Z", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), ""},
	{"2026-11-24T10:00:00.5+01:00", time.Date(2026, 11, 24, 9, 0, 0, 5e8, time.UTC), ""},
	{"1800000000", time.Unix(1800000000, 0), ""},
	{"0", time.Unix(0, 0), ""},
	{"-1", time.Time{}, "invalid parameter since: must be an RFC 3339 time or unix seconds"},
	{"99999999999999", time.Time{}, "invalid parameter since: must be an RFC 3339 time or unix seconds"},
	{"yesterday", time.Time{}, "invalid parameter since: must be an RFC 3339 time or unix seconds"},
	{"2026-11-24", time.Time{}, "invalid parameter since: must be an RFC 3339 time or unix seconds"},
}

func TestParseTime(t *testing.T) {
	for _, tt := range timeTests {
		got, err := parseTime("since", tt.in)
		var ae *japi.Error
		switch {
		case tt.err != "" && (!errors.As(err, &ae) || ae.Code != 400 || ae.Msg != tt.err):
			t.Errorf("parseTime(%q) err = %v, want 400 %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || !got.Equal(tt.want)):
			t.Errorf("parseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, tt := range timeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime("since", s)
		var ae *japi.Error
		if err != nil && (!errors.As(err, &ae) || ae.Code != 400) {
			t.Fatalf("parseTime(%q): error %v is not a 400", s, err)
		}
		if err == nil && s != "" && got.IsZero() {
			t.Fatalf("parseTime(%q) accepted as the zero time", s)
		}
	})
}

var authTests = []struct {
	header   string
	mutating bool
	name     string
	err      string
}{
	{"", false, "", "unauthorized: missing bearer token"},
	{"Bearer", false, "", "unauthorized: invalid token"},
	{"Bearer ", false, "", "unauthorized: invalid token"},
	{"Basic operator-secret-000000", false, "", "unauthorized: invalid token"},
	{"Bearer operator-secret-000000", true, "ops", ""},
	{"bearer operator-secret-000000", false, "ops", ""},
	{"Bearer  operator-secret-000000 ", false, "ops", ""},
	{"Bearer operator-secret-00000", false, "", "unauthorized: invalid token"},
	{"Bearer readonly-secret-000000", false, "ro", ""},
	{"Bearer readonly-secret-000000", true, "ro", "forbidden: read-only token allows GET requests only"},
}

func newTestAuth() *auth {
	return newAuth([]config.Token{{Name: "ops", Secret: "operator-secret-000000"}}, []config.Token{{Name: "ro", Secret: "readonly-secret-000000"}})
}

func TestAuth(t *testing.T) {
	a := newTestAuth()
	for _, tt := range authTests {
		r := httptest.NewRequest("GET", "/api/x", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		tok, err := a.check(r, tt.mutating)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.err || (tt.err == "" && tok.name != tt.name) {
			t.Errorf("%q mutating=%v: %q %q, want %q %q", tt.header, tt.mutating, tok.name, got, tt.name, tt.err)
		}
	}
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.Header.Set("Authorization", "Bearer scrape-secret-0000000")
	if err := a.checkMetrics(r, "scrape-secret-0000000"); err != nil {
		t.Errorf("metrics token: %v", err)
	}
	if err := a.checkMetrics(r, "other-secret-00000000"); err == nil {
		t.Error("wrong metrics token accepted")
	}
}

func FuzzAuth(f *testing.F) {
	for _, tt := range authTests {
		f.Add(tt.header, tt.mutating)
	}
	a := newTestAuth()
	f.Fuzz(func(t *testing.T, h string, mutating bool) {
		r := httptest.NewRequest("GET", "/api/x", nil)
		r.Header["Authorization"] = []string{h}
		tok, err := a.check(r, mutating)
		if err == nil && tok.name != "ops" && tok.name != "ro" {
			t.Fatalf("%q accepted as %q", h, tok.name)
		}
		if err == nil && tok.name == "ro" && mutating {
			t.Fatalf("read-only token allowed a mutating call")
		}
	})
}

func TestRouteOptions(t *testing.T) {
	cfg := config.Default()
	cfg.ID = "t"
	cfg.API.RateLimit, cfg.API.RateBurst = 1, 2
	cfg.API.MaxBody = 16
	full := true
	s, err := New(Options{Config: &cfg, Registry: prometheus.NewRegistry(), Operator: []config.Token{{Name: "ops", Secret: "operator-secret-000000"}},
		Blocking: func() bool { return full }})
	if err != nil {
		t.Fatal(err)
	}
	ok := func(w http.ResponseWriter, r *http.Request) error {
		if _, err := io.ReadAll(r.Body); err != nil {
			return err
		}
		japi.OK(w, r, nil)
		return nil
	}
	s.Handle("GET /disk", ok, DiskHungry())
	s.Handle("GET /cheap", ok, Public())
	s.Handle("GET /costly", ok, Expensive(), MaxBody(4))
	h := s.Handler()
	call := func(path, body string) (int, string) {
		r := httptest.NewRequest("GET", path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer operator-secret-000000")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var e struct{ Msg string }
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		return w.Code, e.Msg
	}
	if c, m := call("/disk", ""); c != 507 || m != "insufficient storage: cache_dir is above cache_threshold, retry later" {
		t.Errorf("disk full: %d %q", c, m)
	}
	full = false
	if c, _ := call("/disk", ""); c != 200 {
		t.Errorf("disk ok: %d", c)
	}
	if c, m := call("/cheap", strings.Repeat("x", 17)); c != 413 || m != "request body too large (limit 16 bytes)" {
		t.Errorf("default body limit: %d %q", c, m)
	}
	if c, m := call("/costly", "12345"); c != 413 || m != "request body too large (limit 4 bytes)" {
		t.Errorf("route body limit: %d %q", c, m)
	}
	// The burst of 2 is spent (the 413 above counted); the next is limited.
	codes := []int{}
	for range 3 {
		c, _ := call("/costly", "")
		codes = append(codes, c)
	}
	if codes[len(codes)-1] != 429 {
		t.Errorf("rate limit: codes %v", codes)
	}
	for _, r := range []string{"GET /disk", "GET /cheap", "GET /costly", "GET /api/agents"} {
		if !slices.Contains(s.Routes(), r) {
			t.Errorf("Routes() lacks %s", r)
		}
	}
}
