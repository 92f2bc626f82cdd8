package backoff

import (
	"context"
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fixed(f float64) func() float64 { return func() float64 { return f } }

// The configurations of the repository's retry loops, each with the
// sequence of delays it must produce.
func TestDelays(t *testing.T) {
	const ms = time.Millisecond
	const top = 0.999999999
	for _, tc := range []struct {
		name string
		b    *Backoff
		want []time.Duration // rounded to the millisecond
	}{
		// libagent reconnect: [1 s, 2 s], [1 s, 4 s], ..., [1 s, 60 s].
		{"agent ceiling", &Backoff{Min: time.Second, Max: time.Minute, Rand: fixed(top)},
			[]time.Duration{2000 * ms, 4000 * ms, 8000 * ms, 16000 * ms, 32000 * ms, 60000 * ms, 60000 * ms}},
		{"agent floor", &Backoff{Min: time.Second, Max: time.Minute, Rand: fixed(0)},
			[]time.Duration{1000 * ms, 1000 * ms, 1000 * ms}},
		{"agent half", &Backoff{Min: time.Second, Max: time.Minute, Rand: fixed(0.5)},
			[]time.Duration{1500 * ms, 2500 * ms, 4500 * ms}},
		{"bad rand is the floor", &Backoff{Min: time.Second, Rand: fixed(1.5)},
			[]time.Duration{1000 * ms, 1000 * ms}},
		{"negative rand is the floor", &Backoff{Min: time.Second, Rand: fixed(-0.5)},
			[]time.Duration{1000 * ms}},
		// daemon restarts: [0, 10 ms), [0, 20 ms), ... capped at 80 ms.
		{"daemon half", &Backoff{Initial: 10 * ms, Max: 80 * ms, Rand: fixed(0.5)},
			[]time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 40 * ms}},
		{"full jitter reaches zero", &Backoff{Initial: 10 * ms, Rand: fixed(0)},
			[]time.Duration{0, 0}},
		{"rand 1 is the ceiling", &Backoff{Initial: 10 * ms, Max: 30 * ms, Rand: fixed(1)},
			[]time.Duration{10 * ms, 20 * ms, 30 * ms}},
		// execsvc flush retries: 50 ms, 100 ms, ... 5 s, no jitter.
		{"no jitter", &Backoff{Initial: 50 * ms, Max: 5 * time.Second, NoJitter: true},
			[]time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms}},
		{"factor 3", &Backoff{Initial: 10 * ms, Factor: 3, Max: time.Second, NoJitter: true},
			[]time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, 1000 * ms}},
		{"factor below 1 is 2", &Backoff{Initial: 10 * ms, Factor: 0.5, NoJitter: true},
			[]time.Duration{10 * ms, 20 * ms}},
		{"zero value", &Backoff{NoJitter: true},
			[]time.Duration{1000 * ms, 2000 * ms, 4000 * ms, 8000 * ms, 16000 * ms, 32000 * ms, 60000 * ms}},
		{"max below min is min", &Backoff{Min: time.Second, Max: 10 * ms, NoJitter: true},
			[]time.Duration{1000 * ms, 1000 * ms}},
		{"initial below min is min", &Backoff{Min: time.Second, Initial: 10 * ms, Max: 3 * time.Second, NoJitter: true},
			[]time.Duration{1000 * ms, 2000 * ms, 3000 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			for i, w := range tc.want {
				if d := b.Delay(i).Round(ms); d != w {
					t.Fatalf("Delay(%d) = %v, want %v", i, d, w)
				}
				if got := b.Next().Round(ms); got != w {
					t.Fatalf("attempt %d: got %v, want %v", i, got, w)
				}
			}
		})
	}
}

func TestNoOverflow(t *testing.T) {
	for _, b := range []*Backoff{
		{Min: time.Second, Rand: fixed(1)},
		{Initial: time.Hour, Max: 1 << 62, Rand: fixed(1)},
		{Initial: time.Hour, Max: math.MaxInt64, Factor: 10, NoJitter: true},
	} {
		lo, hi := b.limits().lo, b.limits().hi
		for i := range 2000 { // a very long outage must neither overflow nor exceed the cap
			if d := b.Next(); d < lo || d > hi || d < 0 {
				t.Fatalf("attempt %d: delay %v out of [%v, %v]", i, d, lo, hi)
			}
		}
		if d := b.Delay(math.MaxInt); d < lo || d > hi {
			t.Fatalf("Delay(MaxInt) = %v out of [%v, %v]", d, lo, hi)
		}
	}
}

func TestRealRandInWindow(t *testing.T) {
	b := &Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for range 50 {
		b.Reset()
		for i, hi := range []time.Duration{20, 40, 80, 80} {
			d := b.Next()
			if d < 10*time.Millisecond || d > hi*time.Millisecond {
				t.Fatalf("attempt %d: %v outside [10ms, %vms]", i, d, int(hi))
			}
		}
	}
}

func TestResetOnlyAfterStable(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &Backoff{Min: time.Second, Stable: 30 * time.Second, Rand: fixed(0.999999999)}
	b.Next()
	b.Next() // next ceiling is 8 s

	// Up for 10 s only: a flapping server keeps the grown delay.
	b.Connected(t0)
	b.Disconnected(t0.Add(10 * time.Second))
	if got := b.Next().Round(time.Millisecond); got != 8*time.Second {
		t.Fatalf("after short connection: got %v, want 8s", got)
	}
	// Disconnected without Connected: no reset.
	b.Disconnected(t0.Add(time.Hour))
	if got := b.Next().Round(time.Millisecond); got != 16*time.Second {
		t.Fatalf("after disconnect without connect: got %v, want 16s", got)
	}
	// Up for exactly the stable period: back to the floor window.
	b.Connected(t0)
	b.Disconnected(t0.Add(30 * time.Second))
	if got := b.Next().Round(time.Millisecond); got != 2*time.Second {
		t.Fatalf("after stable connection: got %v, want 2s", got)
	}
	b.Reset()
	if got := b.Next().Round(time.Millisecond); got != 2*time.Second {
		t.Fatalf("after Reset: got %v, want 2s", got)
	}
}

type fakeClock struct{ asked []time.Duration }

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func()) {
	c.asked = append(c.asked, d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch, func() {}
}

func TestWaitUsesClock(t *testing.T) {
	c := &fakeClock{}
	b := &Backoff{Min: time.Second, Rand: fixed(0)}
	if err := b.Wait(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.asked) != 1 || c.asked[0] != time.Second {
		t.Fatalf("clock asked for %v, want [1s]", c.asked)
	}
}

func TestSleepContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		go func() {
			time.Sleep(3 * time.Second)
			cancel()
		}()
		err := Sleep(ctx, nil, time.Minute)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if el := time.Since(start); el != 3*time.Second {
			t.Fatalf("returned after %v, want 3s", el)
		}
		if err := Sleep(context.Background(), nil, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el != 8*time.Second {
			t.Fatalf("full sleep ended at %v, want 8s", el)
		}
		if err := Sleep(ctx, nil, 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("done context: got %v", err)
		}
	})
}
