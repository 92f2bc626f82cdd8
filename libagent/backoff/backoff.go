// Package backoff computes reconnect delays: exponential growth from a floor
// to a cap with full jitter, and a reset only after a connection has stayed up
// for a stable period, so a server that accepts and then immediately drops
// connections does not get hammered at the floor rate.
//
// The n-th delay after a reset (n = 0, 1, 2, ...) is drawn uniformly from
// [Min, min(Max, Min·2^(n+1))]: with the defaults 1–2 s, 1–4 s, 1–8 s, ...,
// 1–60 s. Drawing over the whole range (full jitter) spreads a fleet of agents
// that lost the same server instead of letting them reconnect in lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults used for zero fields of Backoff.
const (
	DefaultMin    = time.Second
	DefaultMax    = 60 * time.Second
	DefaultStable = 30 * time.Second
)

// Backoff is the reconnect delay state of one connection. The zero value is
// ready to use with the defaults. It is safe for concurrent use, although one
// owner (the connection loop) is the intended use.
type Backoff struct {
	// Min is the floor of every delay (default 1 s).
	Min time.Duration
	// Max caps every delay (default 60 s).
	Max time.Duration
	// Stable is how long a connection must stay up before the next
	// disconnect resets the delay to the floor (default 30 s).
	Stable time.Duration
	// Rand returns a number in [0, 1); nil means math/rand/v2.Float64.
	Rand func() float64

	mu          sync.Mutex
	attempt     int
	connectedAt time.Time
}

func (b *Backoff) limits() (lo, hi, stable time.Duration) {
	lo, hi, stable = b.Min, b.Max, b.Stable
	if lo <= 0 {
		lo = DefaultMin
	}
	if hi <= 0 {
		hi = DefaultMax
	}
	if hi < lo {
		hi = lo
	}
	if stable <= 0 {
		stable = DefaultStable
	}
	return lo, hi, stable
}

// Next returns the delay before the next connection attempt and advances the
// attempt counter.
func (b *Backoff) Next() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	lo, hi, _ := b.limits()
	// Double the floor attempt+1 times, stopping at the cap, so the value
	// never overflows however long the outage lasts.
	ceil := lo
	for i := 0; i <= b.attempt && ceil < hi; i++ {
		ceil *= 2
	}
	if ceil > hi || ceil <= 0 {
		ceil = hi
	}
	if b.attempt < 64 {
		b.attempt++
	}
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	f := r()
	if f < 0 || f >= 1 || f != f {
		f = 0
	}
	return lo + time.Duration(f*float64(ceil-lo))
}

// Connected records that a connection was established at at.
func (b *Backoff) Connected(at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.connectedAt = at
}

// Disconnected records that the connection was lost at at. The delay goes
// back to the floor only when the connection had been up for at least Stable.
func (b *Backoff) Disconnected(at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, _, stable := b.limits()
	if !b.connectedAt.IsZero() && at.Sub(b.connectedAt) >= stable {
		b.attempt = 0
	}
	b.connectedAt = time.Time{}
}

// Reset puts the delay back to the floor.
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
