package api

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
)

// HeaderRequestID is the request id header, read from requests and set on
// responses.
const HeaderRequestID = "X-Request-Id"

// state is the per-request record the middleware shares through the context.
// It is used by the goroutine serving the request only.
type state struct {
	id      string
	start   time.Time
	pattern string // the ServeMux pattern, seen by OK/Fail
	err     error  // an internal error written by Fail, for the access log
}

func (s *state) setPattern(r *http.Request) {
	if r.Pattern != "" {
		s.pattern = r.Pattern
	}
}

type stateKey struct{}

func stateOf(r *http.Request) *state {
	s, _ := r.Context().Value(stateKey{}).(*state)
	return s
}

// withState returns r's state, adding one (started now) when r has none.
func withState(r *http.Request) (*state, *http.Request) {
	if s := stateOf(r); s != nil {
		return s, r
	}
	s := &state{start: time.Now()}
	return s, r.WithContext(context.WithValue(r.Context(), stateKey{}, s))
}

// RequestIDFrom returns the request id set by [RequestID], or "".
func RequestIDFrom(ctx context.Context) string {
	if s, _ := ctx.Value(stateKey{}).(*state); s != nil {
		return s.id
	}
	return ""
}

// StartFrom returns when the request entered the middleware, or the zero
// time.
func StartFrom(ctx context.Context) time.Time {
	if s, _ := ctx.Value(stateKey{}).(*state); s != nil {
		return s.start
	}
	return time.Time{}
}

// validRequestID reports whether an incoming id is 1-64 characters of
// [A-Za-z0-9._-], safe to echo and to log.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// RequestID gives each request an id: the incoming X-Request-Id when it is
// 1-64 characters of [A-Za-z0-9._-], a new UUID otherwise. The id is set on
// the response header and is available through [RequestIDFrom]; the
// request's start time (for extime) through [StartFrom].
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, r := withState(r)
		if st.id == "" {
			if id := r.Header.Get(HeaderRequestID); validRequestID(id) {
				st.id = id
			} else {
				st.id = uuid.NewString()
			}
		}
		w.Header().Set(HeaderRequestID, st.id)
		next.ServeHTTP(w, r)
	})
}

// Recover turns a panic in next into a 500 envelope and an error log line
// with the stack, so one bad request does not take the server down. When
// the response has already started, the connection is aborted instead. A
// panic with http.ErrAbortHandler is passed on untouched.
func Recover(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := record(w)
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.LogAttrs(r.Context(), slog.LevelError, "http handler panic",
					slog.String("reqid", RequestIDFrom(r.Context())),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Any("panic", v),
					slog.String("stack", string(debug.Stack())))
				if rec.wrote {
					if st := stateOf(r); st != nil {
						st.err = fmt.Errorf("panic after the response started, connection aborted: %v", v)
					}
					panic(http.ErrAbortHandler)
				}
				Fail(rec, r, fmt.Errorf("panic: %v", v))
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// AccessLog logs one line per request: method, route pattern, path (never
// the query string, which may hold secrets), status, duration, bytes written
// and request id. A 500 is logged at error level with the internal error
// that [Fail] kept back from the client; 4xx at warn; the rest at info.
func AccessLog(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, r := withState(r)
			rec := record(w)
			defer func() {
				st.setPattern(r)
				status := rec.status
				if !rec.wrote {
					status = http.StatusOK
				}
				level := slog.LevelInfo
				switch {
				case status >= 500 || st.err != nil:
					level = slog.LevelError
				case status >= 400:
					level = slog.LevelWarn
				}
				attrs := []slog.Attr{
					slog.String("method", r.Method),
					slog.String("route", st.pattern),
					slog.String("path", r.URL.Path),
					slog.Int("status", status),
					slog.Duration("duration", time.Since(st.start)),
					slog.Int64("bytes", rec.bytes),
					slog.String("reqid", st.id),
				}
				if st.err != nil {
					attrs = append(attrs, slog.String("err", st.err.Error()))
				}
				log.LogAttrs(r.Context(), level, "http request", attrs...)
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// MaxBody limits request bodies to n bytes; reading past it fails with an
// *http.MaxBytesError, which [Fail] and [DecodeJSON] answer with a 413.
func MaxBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				Fail(w, r, tooLarge(n))
				return
			}
			// Replaced in place, as net/http's own examples do: a shallow
			// copy would hide the ServeMux pattern from the access log.
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// Stack wraps h in the middleware in the order they are meant to run:
// RequestID, AccessLog, Recover, MaxBody(maxBody).
func Stack(h http.Handler, log *slog.Logger, maxBody int64) http.Handler {
	return RequestID(AccessLog(log)(Recover(log)(MaxBody(maxBody)(h))))
}

// recorder notes the status and size of a response. It forwards Flush and
// Hijack (streaming, WebSocket) and unwraps for http.ResponseController.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	bytes  int64
}

func record(w http.ResponseWriter) *recorder {
	if rec, ok := w.(*recorder); ok {
		return rec
	}
	return &recorder{ResponseWriter: w, status: http.StatusOK}
}

func (rec *recorder) WriteHeader(code int) {
	if !rec.wrote && code >= 200 {
		rec.status, rec.wrote = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	rec.wrote = true
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

func (rec *recorder) Flush() {
	rec.wrote = true
	_ = http.NewResponseController(rec.ResponseWriter).Flush()
}

// Hijack hands the connection over; the access log shows it as 101, the
// status of the WebSocket upgrades that hijack connections.
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(rec.ResponseWriter).Hijack()
	if err == nil && !rec.wrote {
		rec.status = http.StatusSwitchingProtocols
	}
	rec.wrote = true
	return conn, rw, err
}

func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }
