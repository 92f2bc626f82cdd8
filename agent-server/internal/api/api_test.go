package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
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
	header string
	name   string
	err    string
}{
	{"", "", "unauthorized: missing bearer token"},
	{"Bearer", "", "unauthorized: invalid token"},
	{"Bearer ", "", "unauthorized: invalid token"},
	{"Basic operator-secret-000000", "", "unauthorized: invalid token"},
	{"Bearer operator-secret-000000", "ops", ""},
	{"bearer operator-secret-000000", "ops", ""},
	{"Bearer  operator-secret-000000 ", "ops", ""},
	{"Bearer operator-secret-00000", "", "unauthorized: invalid token"},
	{"Bearer readonly-secret-000000", "ro", ""},
	{"Bearer expired-secret-0000000", "", "unauthorized: token expired"},
	{"Bearer aft_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "unauthorized: invalid token"}, // no store here
}

var testNow = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func newTestAuth(t testing.TB) *auth {
	a, err := newAuth([]config.Token{
		{Name: "ops", Secret: "operator-secret-000000", Scopes: []authz.Scope{authz.Admin}},
		{Name: "ro", Secret: "readonly-secret-000000", Scopes: authz.ReadOnlyScopes},
		{Name: "old", Secret: "expired-secret-0000000", Scopes: []authz.Scope{authz.AgentsRead}, Expires: testNow},
	}, nil, func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuth(t *testing.T) {
	a := newTestAuth(t)
	for _, tt := range authTests {
		r := httptest.NewRequest("GET", "/api/x", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		id, err := a.authenticate(r)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.err || (tt.err == "" && id.Name != tt.name) {
			t.Errorf("%q: %q %q, want %q %q", tt.header, id.Name, got, tt.name, tt.err)
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
	r.Header.Set("Authorization", "Bearer readonly-secret-000000")
	if err := a.checkMetrics(r, "other-secret-00000000"); err != nil {
		t.Errorf("read-only token (metrics:read) on /metrics: %v", err)
	}
	if _, err := newAuth([]config.Token{{Name: "x", Secret: "0123456789abcdef", Scopes: []authz.Scope{authz.Admin}, Selector: "env=prod"}}, nil, time.Now); err == nil {
		t.Error("admin with a selector accepted")
	}
}

func FuzzAuth(f *testing.F) {
	for _, tt := range authTests {
		f.Add(tt.header)
	}
	a := newTestAuth(f)
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "/api/x", nil)
		r.Header["Authorization"] = []string{h}
		id, err := a.authenticate(r)
		if err == nil && id.Name != "ops" && id.Name != "ro" {
			t.Fatalf("%q accepted as %q", h, id.Name)
		}
		if err == nil && id.Name == "ro" && !id.ReadOnly() {
			t.Fatalf("read-only token may write")
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
	s.Handle("GET /disk", ok, DiskHungry(), Scope(authz.AgentsRead))
	s.Handle("GET /cheap", ok, Public())
	s.Handle("GET /costly", ok, Expensive(), MaxBody(4), Authenticated())
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

// TestRouteWithoutRule: a route registered without an authorization rule
// (or with an unknown scope, or two rules) stops the server from starting.
func TestRouteWithoutRule(t *testing.T) {
	cfg := config.Default()
	cfg.ID = "t"
	s, err := New(Options{Config: &cfg, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	h := func(w http.ResponseWriter, r *http.Request) error { return nil }
	for _, tc := range []struct {
		pattern string
		opts    []RouteOption
		want    string
	}{
		{"GET /api/new", nil, `api: route "GET /api/new": no authorization rule`},
		{"GET /api/new2", []RouteOption{Expensive()}, `api: route "GET /api/new2": no authorization rule`},
		{"GET /api/new3", []RouteOption{Scope("exec:everything")}, `api: route "GET /api/new3": unknown scope "exec:everything"`},
		{"GET /api/new4", []RouteOption{Scope(authz.ExecRun), Public()}, `api: route "GET /api/new4": more than one`},
	} {
		func() {
			defer func() {
				p := recover()
				if p == nil || !strings.HasPrefix(fmt.Sprint(p), tc.want) {
					t.Errorf("%s: panic %v, want %q", tc.pattern, p, tc.want)
				}
			}()
			s.Handle(tc.pattern, h, tc.opts...)
		}()
	}
}
