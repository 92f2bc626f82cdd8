package fault

import (
	"errors"
	"fmt"
	"testing"
)

var errSentinel = errors.New("invalid request")

func TestError(t *testing.T) {
	cases := []struct {
		err       error
		text, msg string
		kind      Kind
		param     string
	}{
		{Invalidf(errSentinel, "missing parameter %s", "cmd"), "invalid request: missing parameter cmd", "missing parameter cmd", Invalid, ""},
		{fmt.Errorf("run on agent a1: %w", Invalidf(errSentinel, "bad")), "run on agent a1: invalid request: bad", "bad", Invalid, ""},
		{Invalidf(errSentinel, "no scopes").InParam("scopes"), "invalid request: no scopes", "no scopes", Invalid, "scopes"},
		{New(NotFound, nil, "agent %s", "a1"), "agent a1", "agent a1", NotFound, ""},
		{New(Unavailable, errSentinel, "%d%%", 5), "invalid request: 5%", "5%", Unavailable, ""},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.text {
			t.Errorf("Error() = %q, want %q", got, c.text)
		}
		if got := Message(c.err); got != c.msg {
			t.Errorf("Message(%v) = %q, want %q", c.err, got, c.msg)
		}
		e, ok := As(c.err)
		if !ok || e.Kind != c.kind || e.Param != c.param {
			t.Errorf("As(%v) = %+v %t, want kind %v param %q", c.err, e, ok, c.kind, c.param)
		}
		if wantIs := e.Err != nil; errors.Is(c.err, errSentinel) != wantIs {
			t.Errorf("errors.Is(%v, sentinel) = %t, want %t", c.err, !wantIs, wantIs)
		}
	}
	plain := errors.New("plain")
	if Message(plain) != "plain" {
		t.Errorf("Message(plain) = %q", Message(plain))
	}
	if _, ok := As(plain); ok {
		t.Error("As(plain) found an *Error")
	}
	if s := Kind(0).String(); s != "kind(0)" {
		t.Errorf("Kind(0) = %q", s)
	}
	if s := NotFound.String(); s != "not_found" {
		t.Errorf("NotFound = %q", s)
	}
}
