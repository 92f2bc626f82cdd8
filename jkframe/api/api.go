// Package api holds the HTTP conventions shared by our servers: the JSON
// envelope of the agent-server API, typed errors that choose the status code,
// parameter and body parsing that answer bad input with a 400 naming the
// parameter, and middleware (request ids, panic recovery, access log, body
// limit).
//
// Responses use one envelope, and the HTTP status always equals its code:
//
//	{"code":200,"payload":{...},"extime":3}
//	{"code":404,"msg":"not found: agent","reqid":"5f0c...","extime":1}
//
// payload is omitted when nil; extime is the milliseconds since the request
// entered the middleware ([RequestID] or [AccessLog]; 0 without either).
//
// A handler returns errors instead of writing them:
//
//	mux.Handle("GET /api/agents/{id}", api.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
//		p := api.Params(r)
//		id := p.Path("id")
//		full := p.Bool("full", false)
//		if err := p.Err(); err != nil {
//			return err // 400 "invalid parameter full: must be true or false"
//		}
//		a, ok := agents.Get(id)
//		if !ok {
//			return api.NotFound("agent")
//		}
//		api.OK(w, r, a.View(full))
//		return nil
//	}))
//	srv.Handler = api.Stack(mux, logger, 1<<20)
//
// An *[Error] is written with its code and message. Any other error becomes
// 500 "internal error": its text is never sent, [AccessLog] logs it with the
// request id. Bad input must never take that path, so handlers validate
// with [Params] and [DecodeJSON], which return *Error.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is an error with the HTTP status to answer it with. Msg is sent to
// the client; Err, when set, is the cause, kept for errors.Is/As and logs.
type Error struct {
	Code int
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Err.Error() != e.Msg {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// BadParam is a 400 for parameter name: "invalid parameter <name>: <reason>".
func BadParam(name, reason string) *Error {
	return &Error{Code: http.StatusBadRequest, Msg: "invalid parameter " + name + ": " + reason}
}

// MissingParam is a 400: "missing parameter <name>".
func MissingParam(name string) *Error {
	return &Error{Code: http.StatusBadRequest, Msg: "missing parameter " + name}
}

// NotFound is a 404: "not found: <what>".
func NotFound(what string) *Error {
	return &Error{Code: http.StatusNotFound, Msg: "not found: " + what}
}

// Errorf is an error with the given code and a formatted message; a %w verb
// also sets Err.
func Errorf(code int, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	e := &Error{Code: code, Msg: err.Error()}
	if errors.Unwrap(err) != nil || len(unwrapAll(err)) > 0 {
		e.Err = err // keeps the %w chain for errors.Is/As
	}
	return e
}

func unwrapAll(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	return nil
}

// HandlerFunc is an http.Handler that returns its error: a non-nil error is
// written with [Fail]; nil means the handler wrote the response itself.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		Fail(w, r, err)
	}
}

type envelope struct {
	Code    int    `json:"code"`
	Payload any    `json:"payload,omitempty"`
	Msg     string `json:"msg,omitempty"`
	ReqID   string `json:"reqid,omitempty"`
	Extime  int64  `json:"extime"`
}

// OK writes payload in a 200 envelope. A payload that cannot be encoded as
// JSON is a bug and is answered with a 500.
func OK(w http.ResponseWriter, r *http.Request, payload any) {
	b, err := marshal(envelope{Code: http.StatusOK, Payload: payload, Extime: extime(r)})
	if err != nil {
		Fail(w, r, fmt.Errorf("api: encode payload: %w", err))
		return
	}
	write(w, r, http.StatusOK, b)
}

const internalMsg = "internal error"

// Fail writes err in a failure envelope. An *Error (found with errors.As)
// gives the code and message; a *http.MaxBytesError (a body read past
// [MaxBody]) is a 413; anything else is a 500 "internal error" whose text is
// kept for the access log, not sent.
func Fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := http.StatusInternalServerError, internalMsg
	var ae *Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae) && ae.Code >= 400 && ae.Code <= 599:
		code, msg = ae.Code, ae.Msg
	case errors.As(err, &mbe):
		code, msg = tooLarge(mbe.Limit).Code, tooLarge(mbe.Limit).Msg
	}
	st := stateOf(r)
	if st != nil {
		st.setPattern(r)
		if code == http.StatusInternalServerError && msg == internalMsg {
			st.err = err
		}
	}
	e := envelope{Code: code, Msg: msg, Extime: extime(r)}
	if st != nil {
		e.ReqID = st.id
	}
	b, _ := marshal(e) // only strings and ints: cannot fail
	write(w, r, code, b)
}

// marshal encodes without HTML escaping: messages such as ">= 1" stay
// readable, and the Content-Type is JSON, never HTML.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil // with the Encoder's trailing newline
}

func tooLarge(limit int64) *Error {
	return &Error{Code: http.StatusRequestEntityTooLarge, Msg: "request body too large (limit " + strconv.FormatInt(limit, 10) + " bytes)"}
}

func write(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	if st := stateOf(r); st != nil {
		st.setPattern(r)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body) // a failed write means the client left
}

func extime(r *http.Request) int64 {
	st := stateOf(r)
	if st == nil {
		return 0
	}
	return time.Since(st.start).Milliseconds()
}
