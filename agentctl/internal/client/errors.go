package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is a failure reply of the API: HTTP status and the envelope's
// message.
type Error struct {
	Status int
	Msg    string
	ReqID  string
	Method string
	Path   string
	// Retries is how often the call was retried before this answer.
	Retries int
}

func (e *Error) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.Status))
	}
	return fmt.Sprintf("%d: %s", e.Status, msg)
}

// IsStatus reports whether err is an API error with one of the statuses.
func IsStatus(err error, status ...int) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	for _, s := range status {
		if e.Status == s {
			return true
		}
	}
	return false
}

// IsRouteMissing reports whether err says the server has no such route
// (an older server), as opposed to a missing agent or task.
func IsRouteMissing(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound && (e.Msg == "not found: route" || e.Msg == "404 page not found")
}

// ConnError is a request that got no HTTP answer: refused, reset, TLS,
// DNS.
type ConnError struct {
	Server string
	Err    error
}

func (e *ConnError) Error() string { return fmt.Sprintf("cannot reach %s: %v", e.Server, e.Err) }
func (e *ConnError) Unwrap() error { return e.Err }

// TimeoutError is a call that took longer than its timeout.
type TimeoutError struct{ Err error }

func (e *TimeoutError) Error() string { return fmt.Sprintf("timed out: %v", e.Err) }
func (e *TimeoutError) Unwrap() error { return e.Err }
