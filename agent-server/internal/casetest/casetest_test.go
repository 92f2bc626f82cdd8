package casetest

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
)

// recorder is a testing.TB that keeps what Run reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// Run reports a wrong value, a missing, unexpected or different error,
// and runs then on the cases that gave their value only.
func TestRun(t *testing.T) {
	atoi := func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, errors.New("not a number")
		}
		return n, nil
	}
	var r recorder
	var then []string
	Run(&r, "atoi", atoi, []Case[string, int]{
		{In: "1", Want: 1},
		{In: "2", Want: 3},
		{In: "x", Err: "not a number"},
		{In: "y", Err: "other"},
		{In: "4", Err: "not a number"},
		{In: "z", Want: 0},
	}, func(c Case[string, int], got int) { then = append(then, c.In) })
	want := []string{
		`atoi("2") = 2, <nil>; want 3`,
		`atoi("y") error not a number, want "other"`,
		`atoi("4") error <nil>, want "not a number"`,
		`atoi("z") = 0, not a number; want 0`,
	}
	if fmt.Sprint(r.errs) != fmt.Sprint(want) {
		t.Errorf("reported %q, want %q", r.errs, want)
	}
	if fmt.Sprint(then) != "[1]" {
		t.Errorf("then ran on %q, want [1]", then)
	}
}
