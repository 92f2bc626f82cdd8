package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/store"
)

// TestRuntimeTokenExpiry: a runtime token works until its expiry on the
// server's clock and answers "token expired" from then on; ttl and
// expires_at set the same expiry.
func TestRuntimeTokenExpiry(t *testing.T) {
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	cfg := config.Default()
	cfg.ID = "t"
	s, err := New(Options{Config: &cfg, Store: st, Registry: prometheus.NewRegistry(), Now: clock,
		Operator: []config.Token{{Name: "ops", Secret: "operator-secret-000000"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	call := func(method, path, token, body string) (int, string, json.RawMessage) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var e struct {
			Msg     string
			Payload json.RawMessage
		}
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		return w.Code, e.Msg, e.Payload
	}
	secrets := map[string]string{}
	for _, body := range []string{`{"name":"ttl","scopes":["agents:read"],"ttl":3600}`, `{"name":"at","scopes":["agents:read"],"expires_at":` + itoa(int(testNow.Add(time.Hour).Unix())) + `}`} {
		code, msg, p := call("POST", "/api/tokens", "operator-secret-000000", body)
		var made struct {
			Name, Secret string
			ExpiresAt    int64 `json:"expires_at"`
		}
		if code != 200 || json.Unmarshal(p, &made) != nil || made.ExpiresAt != testNow.Add(time.Hour).Unix() {
			t.Fatalf("create %s: %d %q %s", body, code, msg, p)
		}
		secrets[made.Name] = made.Secret
	}
	for name, secret := range secrets {
		if code, msg, _ := call("GET", "/api/whoami", secret, ""); code != 200 {
			t.Errorf("%s before expiry: %d %q", name, code, msg)
		}
	}
	now.Store(testNow.Add(time.Hour - time.Nanosecond).UnixNano())
	if code, _, _ := call("GET", "/api/whoami", secrets["ttl"], ""); code != 200 {
		t.Errorf("just before expiry: %d", code)
	}
	now.Store(testNow.Add(time.Hour).UnixNano())
	for name, secret := range secrets {
		if code, msg, _ := call("GET", "/api/whoami", secret, ""); code != 401 || msg != "unauthorized: token expired" {
			t.Errorf("%s at expiry: %d %q", name, code, msg)
		}
	}
	if code, _, p := call("GET", "/api/tokens/ttl", "operator-secret-000000", ""); code != 200 || !strings.Contains(string(p), `"state":"expired"`) {
		t.Errorf("listed state: %d %s", code, p)
	}
}

var ttlCases = []struct {
	in   string
	want time.Duration
	err  string
}{
	{"3600", time.Hour, ""},
	{"720h", 720 * time.Hour, ""},
	{"1h30m", 90 * time.Minute, ""},
	{"0", 0, "must be more than 0"},
	{"-1h", 0, "must be more than 0"},
	{"87841h", 0, "at most 10 years"},
	{"999999999999", 0, "at most 10 years"},
	{"soon", 0, "must be seconds or a duration"},
	{"1.5", 0, "must be seconds or a duration"},
	{"", 0, "must be seconds or a duration"},
}

func TestParseTTL(t *testing.T) {
	for _, tc := range ttlCases {
		got, err := parseTTL(ttlValue(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseTTL(%q) error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseTTL(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseTTL(f *testing.F) {
	for _, tc := range ttlCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTTL(ttlValue(s))
		if err == nil && (d <= 0 || d > maxTokenTTL) {
			t.Fatalf("parseTTL(%q) = %v accepted", s, d)
		}
		var v ttlValue
		if err := v.UnmarshalJSON([]byte(s)); err == nil {
			_, _ = parseTTL(v)
		}
	})
}
