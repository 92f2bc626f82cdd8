package agent

import "time"

// Clock is the time source of the schedules; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has elapsed and a
	// function that releases the timer early.
	After(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}
