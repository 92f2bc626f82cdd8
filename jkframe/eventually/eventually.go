// Package eventually waits in tests for a condition to hold, polling it
// until a deadline, instead of sleeping and hoping.
//
// The default deadline is generous on purpose: tests share small, busy
// machines, and a deadline only costs time when the test fails anyway. What
// a test checks is the condition, never how fast it came true.
//
//	eventually.True(t, "agent a1 online", func() bool { return online("a1") })
//	eventually.Within(t, 5*time.Minute, "all lines in the sink", cond)
//	eventually.NoError(t, "task done", func() error {
//		if s := status(); s != "done" {
//			return fmt.Errorf("state %q", s) // reported if the deadline passes
//		}
//		return nil
//	})
//
// Wait is the same loop without a testing.TB, for TestMain and helpers that
// return errors.
package eventually

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Defaults of the zero Poll.
const (
	DefaultTimeout  = time.Minute
	DefaultInterval = 10 * time.Millisecond
)

// Poll is how to wait; the zero value uses the defaults.
type Poll struct {
	// Timeout is how long the condition has to come true (DefaultTimeout
	// when 0).
	Timeout time.Duration
	// Interval is the pause between two checks (DefaultInterval when 0).
	Interval time.Duration
	// OnTimeout, when set, runs once the deadline has passed, before the
	// test fails (to log the state that explains the failure).
	OnTimeout func()
}

// Wait checks cond until it returns nil and returns nil, or returns an
// error naming what, the time waited and cond's last error once the
// deadline has passed. cond is checked at least once.
func (p Poll) Wait(what string, cond func() error) error {
	timeout, interval := p.Timeout, p.Interval
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	deadline := time.Now().Add(timeout)
	for n := 1; ; n++ {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			if p.OnTimeout != nil {
				p.OnTimeout()
			}
			if errors.Is(err, errFalse) {
				return fmt.Errorf("timed out after %v waiting for %s (checked %d times)", timeout, what, n)
			}
			return fmt.Errorf("timed out after %v waiting for %s (checked %d times); last: %w", timeout, what, n, err)
		}
		time.Sleep(interval)
	}
}

// errFalse is the "last state" of a boolean condition: there is none.
var errFalse = errors.New("condition false")

func boolCond(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errFalse
	}
}

// True fails t (t.Fatal) unless cond returns true before the deadline.
func (p Poll) True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if err := p.Wait(what, boolCond(cond)); err != nil {
		t.Fatal(err)
	}
}

// NoError fails t (t.Fatal) unless cond returns nil before the deadline; the
// failure shows cond's last error, the state it last observed.
func (p Poll) NoError(t testing.TB, what string, cond func() error) {
	t.Helper()
	if err := p.Wait(what, cond); err != nil {
		t.Fatal(err)
	}
}

// True waits with the defaults for cond to return true; see Poll.True.
func True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Poll{}.True(t, what, cond)
}

// Within waits at most d for cond to return true; see Poll.True.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	Poll{Timeout: d}.True(t, what, cond)
}

// NoError waits with the defaults for cond to return nil; see Poll.NoError.
func NoError(t testing.TB, what string, cond func() error) {
	t.Helper()
	Poll{}.NoError(t, what, cond)
}

// Wait waits with the defaults for cond to return nil; see Poll.Wait.
func Wait(what string, cond func() error) error {
	return Poll{}.Wait(what, cond)
}

// WaitTrue waits at most d for cond to return true and returns the timeout
// error otherwise; see Poll.Wait.
func WaitTrue(d time.Duration, what string, cond func() bool) error {
	return Poll{Timeout: d}.Wait(what, boolCond(cond))
}
