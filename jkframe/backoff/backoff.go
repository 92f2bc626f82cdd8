// Package backoff computes retry delays: exponential growth of a ceiling
// from Initial to Max, a delay drawn with full jitter between a floor (Min)
// and that ceiling, and a reset either on demand or only after a connection
// has stayed up for a stable period, so that a server that accepts and then
// at once drops connections is not hammered at the floor rate. It is the one
// backoff of the repository: agent reconnects (libagent), worker restarts
// (daemon), CLI retries (agentctl), store retries and simulators
// (agent-server) all use it.
//
// The n-th delay after a reset (n = 0, 1, 2, ...) has the ceiling
//
//	c(n) = min(Max, Initial·Factor^n)
//
// and is drawn uniformly from [Min, c(n)], or is c(n) itself with NoJitter.
// An agent with Min 1 s, Max 60 s (Initial defaults to 2·Min) waits 1–2 s,
// 1–4 s, 1–8 s, ..., 1–60 s; drawing over the whole range spreads a fleet
// that lost the same server instead of letting it reconnect in lockstep.
package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults used for zero fields of Backoff.
const (
	// DefaultInitial is the first ceiling when both Initial and Min are 0.
	DefaultInitial = time.Second
	DefaultMax     = 60 * time.Second
	DefaultFactor  = 2
	DefaultStable  = 30 * time.Second
)

// Backoff is the delay state of one retry loop. The zero value is ready to
// use: full jitter over [0, 1 s], [0, 2 s], ... up to [0, 60 s]. Backoff is
// safe for concurrent use, although one owner (the retry loop) is the
// intended use; the fields must not change once it is in use.
type Backoff struct {
	// Min is the floor of every delay (default 0).
	Min time.Duration
	// Initial is the ceiling of the first delay (default Factor·Min, or
	// DefaultInitial when Min is 0 too).
	Initial time.Duration
	// Max caps every ceiling (default DefaultMax, or Initial when larger).
	Max time.Duration
	// Factor is the growth of the ceiling per attempt (default 2; values
	// below 1 mean the default).
	Factor float64
	// NoJitter makes every delay its ceiling (deterministic retries of a
	// local resource, where spreading callers out buys nothing).
	NoJitter bool
	// Stable is how long a connection must stay up before the next
	// Disconnected resets the delay to the first one (default 30 s).
	Stable time.Duration
	// Rand returns a number in [0, 1]; nil means math/rand/v2.Float64.
	// Tests inject a fixed value.
	Rand func() float64

	mu          sync.Mutex
	attempt     int
	connectedAt time.Time
}

type limits struct {
	lo, first, hi time.Duration
	factor        float64
	stable        time.Duration
}

func (b *Backoff) limits() limits {
	l := limits{lo: max(b.Min, 0), first: b.Initial, hi: b.Max, factor: b.Factor, stable: b.Stable}
	if l.factor < 1 {
		l.factor = DefaultFactor
	}
	if l.first <= 0 {
		l.first = time.Duration(float64(l.lo) * l.factor)
	}
	if l.first <= 0 {
		l.first = DefaultInitial
	}
	l.first = max(l.first, l.lo)
	if l.hi <= 0 {
		l.hi = max(DefaultMax, l.first)
	}
	l.hi = max(l.hi, l.lo)
	if l.stable <= 0 {
		l.stable = DefaultStable
	}
	return l
}

// Delay returns the n-th delay after a reset (n = 0 for the first) without
// changing b's state: for callers that count their attempts themselves.
func (b *Backoff) Delay(n int) time.Duration {
	l := b.limits()
	// Computed in floating point and compared with the cap before the
	// conversion, so that no outage, however long, overflows.
	c := l.hi
	if f := float64(l.first) * math.Pow(l.factor, float64(max(n, 0))); f < float64(l.hi) {
		c = time.Duration(f)
	}
	c = max(c, l.lo)
	if b.NoJitter {
		return c
	}
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	f := r()
	if !(f >= 0 && f <= 1) { // also NaN
		f = 0
	}
	return l.lo + time.Duration(f*float64(c-l.lo))
}

// Next returns the delay before the next attempt and advances the attempt
// counter.
func (b *Backoff) Next() time.Duration {
	b.mu.Lock()
	n := b.attempt
	if b.attempt < 1024 { // far past any cap; keeps the counter bounded
		b.attempt++
	}
	b.mu.Unlock()
	return b.Delay(n)
}

// Connected records that a connection was established (or a worker
// started) at at.
func (b *Backoff) Connected(at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.connectedAt = at
}

// Disconnected records that the connection was lost (the worker exited) at
// at. The delay goes back to the first one only when the connection had
// been up for at least Stable.
func (b *Backoff) Disconnected(at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.connectedAt.IsZero() && at.Sub(b.connectedAt) >= b.limits().stable {
		b.attempt = 0
	}
	b.connectedAt = time.Time{}
}

// Reset puts the delay back to the first one.
func (b *Backoff) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempt = 0
	b.connectedAt = time.Time{}
}

// Clock creates timers; tests inject a fake one. A nil Clock is the real clock.
type Clock interface {
	// After returns a channel that receives once d has elapsed and a
	// function that releases the timer early.
	After(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Sleep waits for d on clock (nil = real time) or until ctx is done, in which
// case it returns ctx.Err().
func Sleep(ctx context.Context, clock Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	if clock == nil {
		clock = realClock{}
	}
	c, stop := clock.After(d)
	defer stop()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait sleeps for b.Next() on clock (nil = real time), returning early with
// ctx.Err() when ctx is done.
func (b *Backoff) Wait(ctx context.Context, clock Clock) error {
	return Sleep(ctx, clock, b.Next())
}
