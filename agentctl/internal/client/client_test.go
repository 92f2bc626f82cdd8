package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseServer(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "http://127.0.0.1:13081", want: "http://127.0.0.1:13081"},
		{in: "https://fleet.example.com/prefix/", want: "https://fleet.example.com/prefix"},
		{in: "fleet.example.com:13081", want: "https://fleet.example.com:13081"},
		{in: " http://h:1 ", want: "http://h:1"},
		{in: "", err: "no server"},
		{in: "ftp://h", err: "scheme must be http or https"},
		{in: "http://", err: "no host"},
		{in: "http://u:p@h", err: "only scheme"},
		{in: "http://h/?x=1", err: "only scheme"},
		{in: "http://h/#f", err: "only scheme"},
		{in: "http://[::1", err: "missing ']'"},
	} {
		u, err := ParseServer(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || u.String() != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.in, u, err, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"0", 0, true},
		{"3600", time.Minute, true}, // capped
		{"Thu, 01 Jan 2026 00:00:10 GMT", 10 * time.Second, true},
		{"Wed, 31 Dec 2025 23:00:00 GMT", 0, true}, // in the past: at once
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
		{"99999999999999999999", 0, false},
	} {
		got, ok := ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "3600", "Thu, 01 Jan 2026 00:00:10 GMT", "", "-1", "x"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, in string) {
		d, ok := ParseRetryAfter(in, now)
		if d < 0 || d > maxRetryAfter || !ok && d != 0 {
			t.Fatalf("%q: %v %v", in, d, ok)
		}
	})
}

func TestParseDigestHeader(t *testing.T) {
	md5 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	sha := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"md5=:" + md5 + ":", []string{"md5"}},
		{"sha-256=:" + sha + ":, md5=:" + md5 + ":", []string{"md5", "sha-256"}},
		{"SHA-256=:" + sha + ":", []string{"sha-256"}},
		{"sha-512=:" + md5 + ":", []string{"sha-512"}}, // unknown: kept, not checked
		{"md5=:" + sha + ":", nil},                     // wrong length
		{"md5=" + md5, nil},                            // not a byte sequence
		{"md5=:!!:", nil},
		{"", nil},
		{"md5", nil},
		{",,,", nil},
	} {
		got := ParseDigestHeader(tc.in)
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		if fmt.Sprint(slices.Sorted(slices.Values(keys))) != fmt.Sprint(tc.want) && !(len(keys) == 0 && len(tc.want) == 0) {
			t.Errorf("%q: %v, want %v", tc.in, keys, tc.want)
		}
	}
}

func FuzzParseDigestHeader(f *testing.F) {
	f.Add("sha-256=:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ":, md5=:AAAAAAAAAAAAAAAAAAAAAA==:")
	f.Add("md5=:x:")
	f.Fuzz(func(t *testing.T, in string) {
		for alg, b := range ParseDigestHeader(in) {
			if alg == "md5" && len(b) != 16 || alg == "sha-256" && len(b) != 32 {
				t.Fatalf("%q: %s of %d bytes", in, alg, len(b))
			}
		}
	})
}

func TestDecodeEvent(t *testing.T) {
	for _, tc := range []struct {
		typ, data string
		check     func(Event) bool
		err       bool
	}{
		{"state", `{"id":3,"type":"state","agent":"a1","state":"ok","exit_code":0}`, func(e Event) bool {
			return e.Type == "state" && e.Agent == "a1" && e.ExitCode != nil && *e.ExitCode == 0
		}, false},
		{"output", `{"id":4,"agent":"a1","offset":10,"data":"hi\n"}`, func(e Event) bool {
			return e.Type == "output" && e.Offset != nil && *e.Offset == 10 && e.Data == "hi\n"
		}, false},
		{"done", `{"type":"done","state":"done"}`, func(e Event) bool { return e.Type == "done" && e.State == "done" }, false},
		{"dropped", `{"msg":"client too slow"}`, func(e Event) bool { return e.Type == "dropped" }, false},
		{"", `{"type":"state"}`, func(e Event) bool { return e.Type == "state" }, false},
		{"state", ``, func(e Event) bool { return e.Type == "state" }, false},
		{"state", `{`, nil, true},
		{"state", `{"exit_code":"x"}`, nil, true},
	} {
		e, err := DecodeEvent(tc.typ, tc.data)
		if tc.err != (err != nil) {
			t.Errorf("%s %s: error %v", tc.typ, tc.data, err)
			continue
		}
		if err == nil && !tc.check(e) {
			t.Errorf("%s %s: %+v", tc.typ, tc.data, e)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add("output", `{"id":4,"agent":"a1","offset":10,"data":"hi\n"}`)
	f.Add("state", `{"exit_code":3}`)
	f.Add("", `null`)
	f.Fuzz(func(t *testing.T, typ, data string) {
		e, err := DecodeEvent(typ, data)
		if err == nil && typ != "" && e.Type != typ {
			t.Fatalf("type %q, want %q", e.Type, typ)
		}
	})
}

// TestRetry429 checks the retry on the API's rate limit answer: 429 with
// Retry-After, waited as asked, then the call goes through.
func TestRetry429(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"code":401,"msg":"unauthorized: invalid token"}`)
			return
		}
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"code":429,"msg":"rate limited: too many requests to agents, retry later","reqid":"r1"}`)
			return
		}
		fmt.Fprint(w, `{"code":200,"payload":{"id":"c1","version":"9","agents":2}}`)
	}))
	defer srv.Close()
	var waited []time.Duration
	c, err := New(Options{Servers: []string{srv.URL}, Token: "tok", Sleep: func(ctx context.Context, d time.Duration) error {
		waited = append(waited, d)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.ServerInfo(context.Background())
	if err != nil || info.ID != "c1" || info.Agents != 2 {
		t.Fatalf("%+v %v", info, err)
	}
	if fmt.Sprint(waited) != "[1s 1s]" {
		t.Errorf("waited %v, want two Retry-After pauses of 1s", waited)
	}
	// Retries exhausted: the error says so.
	calls.Store(-100)
	c2, _ := New(Options{Servers: []string{srv.URL}, Token: "tok", Retries: 2, Sleep: func(context.Context, time.Duration) error { return nil }})
	defer c2.Close()
	_, err = c2.ServerInfo(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 429 || ae.Retries != 2 || ae.ReqID != "r1" {
		t.Errorf("got %#v", err)
	}
	// A bad token is not retried.
	c3, _ := New(Options{Servers: []string{srv.URL}, Token: "bad", Sleep: func(context.Context, time.Duration) error { t.Error("slept"); return nil }})
	defer c3.Close()
	if _, err := c3.ServerInfo(context.Background()); !IsStatus(err, 401) {
		t.Errorf("bad token: %v", err)
	}
}

// TestFailover checks that a server refusing connections is skipped for
// the next one of the cluster, which is then used first.
func TestFailover(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"code":200,"payload":{"id":"c1"}}`)
	}))
	defer srv.Close()
	c, err := New(Options{Servers: []string{dead, srv.URL}, Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ServerInfo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.Server() != srv.URL {
		t.Errorf("server in use %s, want %s", c.Server(), srv.URL)
	}
	// Nobody answers: a ConnError, tried again after a backoff.
	c2, _ := New(Options{Servers: []string{dead}, Retries: 2, Sleep: func(context.Context, time.Duration) error { return nil }})
	defer c2.Close()
	_, err = c2.ServerInfo(context.Background())
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Errorf("got %v, want a ConnError", err)
	}
}

// TestNotEnvelope checks the error of a reply from something that is not
// the API (a proxy's HTML page).
func TestNotEnvelope(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		fmt.Fprint(w, "<html>\n<body>Bad Gateway</body></html>")
	}))
	defer srv.Close()
	c, _ := New(Options{Servers: []string{srv.URL}})
	defer c.Close()
	_, err := c.ServerInfo(context.Background())
	if err == nil || err.Error() != "502: <html>" {
		t.Errorf("got %v", err)
	}
}

// TestEventsIdle checks that an event stream gone silent (no event, no
// keep-alive comment) ends with an error instead of hanging.
func TestEventsIdle(t *testing.T) {
	saved := eventsIdle
	eventsIdle = 200 * time.Millisecond
	defer func() { eventsIdle = saved }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 1\nevent: state\ndata: {\"agent\":\"a1\",\"state\":\"running\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // silent from now on
	}))
	defer srv.Close()
	c, _ := New(Options{Servers: []string{srv.URL}})
	defer c.Close()
	seq, err := c.Events(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var last error
	for ev, err := range seq {
		if err != nil {
			last = err
			break
		}
		got = append(got, ev.Type+":"+ev.Agent)
	}
	var ce *ConnError
	if fmt.Sprint(got) != "[state:a1]" || !errors.As(last, &ce) || !strings.Contains(last.Error(), "nothing received for 200ms") {
		t.Errorf("events %v, end %v", got, last)
	}
}
