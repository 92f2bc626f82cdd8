// Package fault classifies the errors agent-server's services return to
// the API. An [*Error] carries its [Kind] (what went wrong: the API turns a
// kind into an HTTP status in one place), the sentinel of the package that
// made it (so errors.Is keeps working) and the message meant for the
// caller. The API shows that message as it is: nothing parses error
// strings to find it.
//
// Error() keeps the text of the sentinel-wrapping errors it replaces,
// "<sentinel>: <message>", so log lines do not change.
package fault

import (
	"errors"
	"fmt"
)

// Kind is what went wrong, as the API's caller needs to know it.
type Kind uint8

// Kinds. The status in each comment is the one the API answers with.
const (
	// Invalid: the request is malformed (400). Param names the parameter
	// at fault when there is one.
	Invalid Kind = iota + 1
	// NotFound: what the request names does not exist (404); the message
	// names it ("agent a1").
	NotFound
	// Unavailable: the request could not be carried out now, for a
	// reason the message gives (503).
	Unavailable
	// Conflict: the request clashes with what exists (409).
	Conflict
	// TooLarge: the request's body is over a configured limit (413).
	TooLarge
)

var kindNames = [...]string{Invalid: "invalid", NotFound: "not_found", Unavailable: "unavailable",
	Conflict: "conflict", TooLarge: "too_large"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error is a classified error.
type Error struct {
	Kind Kind
	// Err is the sentinel this error is an instance of (errors.Is), e.g.
	// execsvc.ErrInvalid; nil when there is none.
	Err error
	// Param is the request parameter at fault, "" when none is known.
	Param string
	// Msg is the message for the caller, without the sentinel's text.
	Msg string
}

// New returns an error of kind k, instance of sentinel (may be nil), with
// the message format and args make.
func New(k Kind, sentinel error, format string, args ...any) *Error {
	return &Error{Kind: k, Err: sentinel, Msg: fmt.Sprintf(format, args...)}
}

// Invalidf returns an Invalid error, instance of sentinel.
func Invalidf(sentinel error, format string, args ...any) *Error {
	return New(Invalid, sentinel, format, args...)
}

// InParam returns a copy of e that names param as the one at fault.
func (e *Error) InParam(param string) *Error {
	c := *e
	c.Param = param
	return &c
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Err.Error() + ": " + e.Msg
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// As returns the first *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Message returns the caller's message of err: the Msg of the first *Error
// in its chain, or else err.Error().
func Message(err error) string {
	if e, ok := As(err); ok {
		return e.Msg
	}
	return err.Error()
}
