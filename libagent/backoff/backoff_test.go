package backoff

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fixed(f float64) func() float64 { return func() float64 { return f } }

func TestGrowthAndCap(t *testing.T) {
	b := &Backoff{Rand: fixed(0.999999999)}
	want := []time.Duration{2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range want {
		got := b.Next().Round(time.Millisecond)
		if got != w*time.Second {
			t.Fatalf("attempt %d: got %v, want %v", i, got, w*time.Second)
		}
	}
	for range 200 { // a very long outage must neither overflow nor exceed the cap
		if d := b.Next(); d < DefaultMin || d > DefaultMax {
			t.Fatalf("delay %v out of [%v, %v]", d, DefaultMin, DefaultMax)
		}
	}
}

func TestFullJitterRange(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    float64
		want []time.Duration
	}{
		{"floor", 0, []time.Duration{time.Second, time.Second, time.Second}},
		{"half", 0.5, []time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond, 4500 * time.Millisecond}},
		{"bad rand is floor", 1.5, []time.Duration{time.Second, time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Backoff{Rand: fixed(tc.r)}
			for i, w := range tc.want {
				if got := b.Next(); got != w {
					t.Fatalf("attempt %d: got %v, want %v", i, got, w)
				}
			}
		})
	}
	// With the real random source every value stays in its window.
	b := &Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for i, hi := range []time.Duration{20, 40, 80, 80} {
		d := b.Next()
		if d < 10*time.Millisecond || d > hi*time.Millisecond {
			t.Fatalf("attempt %d: %v outside [10ms, %vms]", i, d, int(hi))
		}
	}
}

func TestResetOnlyAfterStable(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := &Backoff{Stable: 30 * time.Second, Rand: fixed(0.999999999)}
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
	b := &Backoff{Rand: fixed(0)}
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
