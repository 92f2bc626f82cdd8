// Package casetest runs the table tests of agent-server's parsers: a
// function from one input to a value or an error, and a table of inputs,
// each with the value it must give or the exact text of the error it must
// give instead. The same table seeds the parser's fuzz target.
//
// Only tests import it.
package casetest

import (
	"reflect"
	"testing"
)

// Case is one input with the value it must give (Want), or, when Err is
// set, the text of the error it must give instead.
type Case[In, Out any] struct {
	In   In
	Want Out
	Err  string
}

// Run calls f with every case's In and reports, naming f as name: an
// error whose text is not Err, or, where Err is "", an error or a value
// that is not reflect.DeepEqual to Want. Each of then runs on every case
// that gave its value, for checks of the case's own (a round trip).
func Run[In, Out any](t testing.TB, name string, f func(In) (Out, error), cases []Case[In, Out], then ...func(c Case[In, Out], got Out)) {
	t.Helper()
	for _, c := range cases {
		got, err := f(c.In)
		if c.Err != "" {
			if err == nil || err.Error() != c.Err {
				t.Errorf("%s(%q) error %v, want %q", name, any(c.In), err, c.Err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.Want) {
			t.Errorf("%s(%q) = %+v, %v; want %+v", name, any(c.In), got, err, c.Want)
			continue
		}
		for _, f := range then {
			f(c, got)
		}
	}
}

// Seed adds every case's In to the corpus of the fuzz target f.
func Seed[In, Out any](f *testing.F, cases []Case[In, Out]) {
	for _, c := range cases {
		f.Add(c.In)
	}
}
