package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a log sink safe for the server goroutines.
type syncBuffer struct{ syncbuf.Buffer }

// waitFor polls the log for substr: the access log line is written after
// the response, so the client may see the response first.
func (s *syncBuffer) waitFor(t *testing.T, substr string) string {
	t.Helper()
	eventually.NoError(t, fmt.Sprintf("%q in the log", substr), func() error {
		if !strings.Contains(s.String(), substr) {
			return fmt.Errorf("the log is:\n%s", s.String())
		}
		return nil
	})
	return s.String()
}

func newLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

var extimeRE = regexp.MustCompile(`"extime":\d+`)

// serve runs h behind the middleware stack for one request and returns the
// recorder, with extime normalised to 0 in the body.
func serve(h http.Handler, req *http.Request) (*httptest.ResponseRecorder, string) {
	log, _ := newLogger()
	rec := httptest.NewRecorder()
	Stack(h, log, 1<<10).ServeHTTP(rec, req)
	return rec, extimeRE.ReplaceAllString(strings.TrimSpace(rec.Body.String()), `"extime":0`)
}

func TestEnvelope(t *testing.T) {
	tests := []struct {
		name     string
		h        HandlerFunc
		wantCode int
		wantBody string
	}{
		{"ok with payload", func(w http.ResponseWriter, r *http.Request) error {
			OK(w, r, map[string]any{"id": "a1", "n": 2})
			return nil
		}, 200, `{"code":200,"payload":{"id":"a1","n":2},"extime":0}`},
		{"ok nil payload", func(w http.ResponseWriter, r *http.Request) error {
			OK(w, r, nil)
			return nil
		}, 200, `{"code":200,"extime":0}`},
		{"ok empty list", func(w http.ResponseWriter, r *http.Request) error {
			OK(w, r, []int{})
			return nil
		}, 200, `{"code":200,"payload":[],"extime":0}`},
		{"bad param", func(http.ResponseWriter, *http.Request) error {
			return BadParam("page", "must be an integer >= 1")
		}, 400, `{"code":400,"msg":"invalid parameter page: must be an integer >= 1","reqid":"req-1","extime":0}`},
		{"missing param", func(http.ResponseWriter, *http.Request) error {
			return MissingParam("cmd")
		}, 400, `{"code":400,"msg":"missing parameter cmd","reqid":"req-1","extime":0}`},
		{"not found wrapped", func(http.ResponseWriter, *http.Request) error {
			return fmt.Errorf("lookup: %w", NotFound("agent"))
		}, 404, `{"code":404,"msg":"not found: agent","reqid":"req-1","extime":0}`},
		{"errorf", func(http.ResponseWriter, *http.Request) error {
			return Errorf(424, "invalid agent type want [%s] got [%s]", "exec-agent", "metrics-agent")
		}, 424, `{"code":424,"msg":"invalid agent type want [exec-agent] got [metrics-agent]","reqid":"req-1","extime":0}`},
		{"agent failure 503", func(http.ResponseWriter, *http.Request) error {
			return &Error{Code: 503, Msg: "no such file", Err: errors.New("agent said so")}
		}, 503, `{"code":503,"msg":"no such file","reqid":"req-1","extime":0}`},
		{"plain error is internal", func(http.ResponseWriter, *http.Request) error {
			return errors.New("db password is hunter2")
		}, 500, `{"code":500,"msg":"internal error","reqid":"req-1","extime":0}`},
		{"non-error code is internal", func(http.ResponseWriter, *http.Request) error {
			return &Error{Code: 200, Msg: "fine?"}
		}, 500, `{"code":500,"msg":"internal error","reqid":"req-1","extime":0}`},
		{"max bytes error", func(_ http.ResponseWriter, r *http.Request) error {
			_, err := io.ReadAll(r.Body)
			return err
		}, 413, `{"code":413,"msg":"request body too large (limit 1024 bytes)","reqid":"req-1","extime":0}`},
		{"unencodable payload", func(w http.ResponseWriter, r *http.Request) error {
			OK(w, r, make(chan int))
			return nil
		}, 500, `{"code":500,"msg":"internal error","reqid":"req-1","extime":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/x", io.MultiReader(strings.NewReader(strings.Repeat("x", 2000))))
			req.Header.Set(HeaderRequestID, "req-1")
			rec, body := serve(tt.h, req)
			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if body != tt.wantBody {
				t.Errorf("body = %s\nwant   %s", body, tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := rec.Header().Get(HeaderRequestID); got != "req-1" {
				t.Errorf("X-Request-Id = %q", got)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	cause := errors.New("timeout")
	e := Errorf(504, "agent did not answer: %w", cause)
	if !errors.Is(e, cause) || e.Error() != "agent did not answer: timeout" || e.Msg != "agent did not answer: timeout" {
		t.Fatalf("Errorf = %q (Msg %q), Is = %v", e.Error(), e.Msg, errors.Is(e, cause))
	}
	e2 := &Error{Code: 503, Msg: "agent failed", Err: cause}
	if e2.Error() != "agent failed: timeout" {
		t.Fatalf("Error() = %q", e2.Error())
	}
}

func TestExtime(t *testing.T) {
	start := time.Now()
	h := HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if s := StartFrom(r.Context()); s.Before(start) || time.Since(s) > time.Minute {
			t.Errorf("StartFrom = %v, request began at %v", s, start)
		}
		OK(w, r, nil)
		return nil
	})
	rec := httptest.NewRecorder()
	RequestID(h).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var env struct {
		Extime *int64 `json:"extime"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Extime == nil || *env.Extime < 0 {
		t.Fatalf("extime missing or negative in %s (%v)", rec.Body, err)
	}
	// Without middleware: still a valid envelope, extime 0, no reqid.
	rec = httptest.NewRecorder()
	h2 := HandlerFunc(func(http.ResponseWriter, *http.Request) error { return NotFound("task") })
	h2.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := strings.TrimSpace(rec.Body.String()); got != `{"code":404,"msg":"not found: task","extime":0}` {
		t.Fatalf("bare body = %s", got)
	}
}

func TestRequestID(t *testing.T) {
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	tests := []struct {
		name, in string
		keep     bool
	}{
		{"valid", "abc.DEF_123-x", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"65 chars", strings.Repeat("a", 65), false},
		{"empty", "", false},
		{"space", "a b", false},
		{"newline", "a\nb", false},
		{"quote", `a"b`, false},
		{"unicode", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = RequestIDFrom(r.Context()) })
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set(HeaderRequestID, tt.in)
			rec := httptest.NewRecorder()
			RequestID(h).ServeHTTP(rec, req)
			got := rec.Header().Get(HeaderRequestID)
			if got != seen {
				t.Errorf("header %q != context %q", got, seen)
			}
			if tt.keep && got != tt.in {
				t.Errorf("id = %q, want the incoming %q", got, tt.in)
			}
			if !tt.keep && !uuidRE.MatchString(got) {
				t.Errorf("id = %q, want a generated UUID", got)
			}
		})
	}
	if RequestIDFrom(httptest.NewRequest("GET", "/", nil).Context()) != "" {
		t.Error("RequestIDFrom without middleware is not empty")
	}
}

func TestAccessLog(t *testing.T) {
	log, buf := newLogger()
	mux := http.NewServeMux()
	mux.Handle("GET /api/agents/{id}", HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if Params(r).Path("id") == "boom" {
			return errors.New("store: connection refused")
		}
		return NotFound("agent")
	}))
	h := Stack(mux, log, 1<<20)

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/agents/a1?token=s3cret", nil)
	req.Header.Set(HeaderRequestID, "r-404")
	h.ServeHTTP(rec, req)
	var line map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &line); err != nil {
		t.Fatalf("log line: %v\n%s", err, buf)
	}
	want := map[string]any{
		"level": "WARN", "msg": "http request", "method": "GET", "route": "GET /api/agents/{id}",
		"path": "/api/agents/a1", "status": float64(404), "bytes": float64(rec.Body.Len()), "reqid": "r-404",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["duration"]; !ok {
		t.Error("log has no duration")
	}
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("query string leaked into the log: %s", buf)
	}

	rec = httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/api/agents/boom", nil)
	req.Header.Set(HeaderRequestID, "r-500")
	h.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), "refused") {
		t.Errorf("internal error text sent to the client: %s", rec.Body)
	}
	logs := buf.String()
	if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, `"err":"store: connection refused"`) || !strings.Contains(logs, `"reqid":"r-500"`) {
		t.Errorf("500 not logged at error level with its cause and request id:\n%s", logs)
	}
}

func TestRecover(t *testing.T) {
	log, buf := newLogger()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("nil map write") })
	mux.HandleFunc("GET /panic-late", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("partial"))
		_ = http.NewResponseController(w).Flush() // on the wire: no client retry
		panic("late")
	})
	mux.HandleFunc("GET /abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	mux.Handle("GET /ok", HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		OK(w, r, "alive")
		return nil
	}))
	srv := httptest.NewServer(Stack(mux, log, 1<<20))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()

	get := func(path string) (*http.Response, string, error) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set(HeaderRequestID, "rq"+strings.TrimPrefix(path, "/"))
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, extimeRE.ReplaceAllString(strings.TrimSpace(string(b)), `"extime":0`), err
	}

	resp, body, err := get("/panic")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 500 || body != `{"code":500,"msg":"internal error","reqid":"rqpanic","extime":0}` {
		t.Fatalf("panic answered %d %s", resp.StatusCode, body)
	}
	logs := buf.waitFor(t, `"msg":"http handler panic"`)
	for _, want := range []string{`"panic":"nil map write"`, `"reqid":"rqpanic"`, `"stack":"goroutine `, `api.TestRecover`} {
		if !strings.Contains(logs, want) {
			t.Errorf("panic log lacks %s:\n%s", want, logs)
		}
	}

	// Output already started: the connection is cut, not patched up.
	if _, _, err := get("/panic-late"); err == nil {
		t.Error("panic after writing: the client saw a complete response")
	}
	buf.waitFor(t, `"err":"panic after the response started, connection aborted: late"`)

	// ErrAbortHandler is net/http's own signal and is not logged as a panic.
	if _, _, err := get("/abort"); err == nil {
		t.Error("ErrAbortHandler: the client saw a complete response")
	}

	resp, body, err = get("/ok")
	if err != nil || resp.StatusCode != 200 || body != `{"code":200,"payload":"alive","extime":0}` {
		t.Fatalf("after panics: %v %v %s", resp, err, body)
	}
	if strings.Contains(buf.String(), `"reqid":"rqabort","panic"`) || strings.Count(buf.String(), "http handler panic") != 2 {
		t.Errorf("want exactly two panic log lines:\n%s", buf)
	}
}

func TestMaxBody(t *testing.T) {
	var reached bool
	h := HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached = true
		var v map[string]any
		if err := DecodeJSON(r, &v, 1<<20); err != nil {
			return err
		}
		OK(w, r, v)
		return nil
	})
	big := `{"a":"` + strings.Repeat("x", 2000) + `"}`

	// Declared length over the limit: refused before the handler runs.
	req := httptest.NewRequest("POST", "/", strings.NewReader(big))
	rec, body := serve(h, req)
	if rec.Code != 413 || reached || !strings.Contains(body, `"msg":"request body too large (limit 1024 bytes)"`) {
		t.Fatalf("declared oversize: %d reached=%v %s", rec.Code, reached, body)
	}

	// Unknown length (chunked): the limit trips while decoding.
	req = httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	rec, body = serve(h, req)
	if rec.Code != 413 || !reached || !strings.Contains(body, `"msg":"request body too large (limit 1024 bytes)"`) {
		t.Fatalf("streamed oversize: %d reached=%v %s", rec.Code, reached, body)
	}

	req = httptest.NewRequest("POST", "/", strings.NewReader(`{"a":1}`))
	if rec, body = serve(h, req); rec.Code != 200 || body != `{"code":200,"payload":{"a":1},"extime":0}` {
		t.Fatalf("small body: %d %s", rec.Code, body)
	}
}

// A hijacked connection (a WebSocket upgrade) is logged as 101.
func TestAccessLogHijack(t *testing.T) {
	log, buf := newLogger()
	h := AccessLog(log)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\n")
		_ = rw.Flush()
		conn.Close()
	}))
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ws")
	if err == nil {
		resp.Body.Close()
	}
	<-done // the line is written when the handler returns
	var line map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &line); err != nil {
		t.Fatalf("log line: %v\n%s", err, buf)
	}
	if line["status"] != float64(101) || line["level"] != "INFO" {
		t.Errorf("log line %v, want status 101 at INFO", line)
	}
}
