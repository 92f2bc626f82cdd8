package cluster

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The drain's schedule on an injected clock: nothing before Start; the
// sessions closed spread over the period (at most about two per slot, all
// by its end); none while no other member is live; sessions that came in
// meanwhile closed in a next round, an agent closed once not again within
// the period; Start twice keeps the first.
func TestDrainSchedule(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := &leaseWorld{now: t0}
	for i := range 50 {
		w.sessions = append(w.sessions, fmt.Sprintf("a%d", i))
	}
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var other atomic.Bool
	other.Store(true)
	d := NewDrain(DrainOptions{Sessions: w.Sessions, Close: w.Close, Now: w.Now, Metrics: metrics,
		OtherLive: func(time.Time) bool { return other.Load() }})
	if n := d.Step(); n != 0 {
		t.Fatalf("closed %d before Start", n)
	}
	if _, ok := d.Started(); ok {
		t.Fatal("started before Start")
	}
	if !d.Start(5 * time.Second) {
		t.Fatal("Start refused")
	}
	if d.Start(time.Hour) {
		t.Fatal("second Start accepted")
	}
	slot := 100 * time.Millisecond // 5 s / 50 sessions
	for i := range 25 {
		if n := d.Step(); n > 2 {
			t.Fatalf("slot %d: %d closed at once", i, n)
		}
		w.advance(slot)
	}
	half := w.nClosed()
	if half < 20 || half > 30 {
		t.Fatalf("half the period: %d of 50 closed, want about 25", half)
	}
	// No other member live: nothing more closed, whatever the time.
	other.Store(false)
	w.advance(time.Minute)
	if n := d.Step(); n != 0 {
		t.Fatalf("closed %d with no other member live", n)
	}
	// Back: the rest planned again over the period, plus one that came in.
	other.Store(true)
	w.mu.Lock()
	w.sessions = append(w.sessions, "late")
	w.mu.Unlock()
	for range 60 {
		if n := d.Step(); n > 2 {
			t.Fatalf("%d closed at once", n)
		}
		w.advance(slot)
	}
	d.Step()
	if left := w.Sessions(); len(left) != 0 {
		t.Fatalf("after the period: %v left", left)
	}
	if got := testutil.ToFloat64(metrics.drainClosed); got != 51 {
		t.Errorf("drain closes counted %v, want 51", got)
	}
	// An agent that comes back (no redirect target took it) is closed in
	// the next round, and once closed not again within the period.
	w.mu.Lock()
	w.sessions = append(w.sessions, "back")
	w.mu.Unlock()
	for range 60 {
		if d.Step(); len(w.Sessions()) == 0 {
			break
		}
		w.advance(slot)
	}
	if len(w.Sessions()) != 0 {
		t.Fatal("a session that came in during the drain is not closed")
	}
	w.mu.Lock()
	w.sessions = append(w.sessions, "back")
	w.mu.Unlock()
	w.advance(slot)
	d.Step()
	if len(w.Sessions()) != 1 {
		t.Fatal("closed again within the period")
	}
	w.advance(5 * time.Second)
	d.Step() // plans it again
	w.advance(5 * time.Second)
	d.Step()
	if len(w.Sessions()) != 0 {
		t.Fatal("not closed again after the period")
	}
}
