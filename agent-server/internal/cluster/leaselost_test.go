package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// leaseWorld is what LeaseLost sees in TestLeaseLost: a clock moved by the
// test, this member's lease, the others' (through a Member's LeaseState,
// fed as listings and announcements feed it) and the sessions here.
type leaseWorld struct {
	mu       sync.Mutex
	now      time.Time
	sessions []string
	closed   []string
}

func (w *leaseWorld) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *leaseWorld) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
}

func (w *leaseWorld) Sessions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sessions)
}

func (w *leaseWorld) Close(agent string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := slices.Index(w.sessions, agent)
	if i < 0 {
		return false
	}
	w.sessions = slices.Delete(w.sessions, i, i+1)
	w.closed = append(w.closed, agent)
	return true
}

func (w *leaseWorld) nClosed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.closed)
}

// syncBuf is a log buffer safe for the test to read.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines(level, substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, "level="+level) && strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// TestLeaseLost: the rules of a member whose lease ended, on an injected
// clock. Lease live: nothing. Ended with another member live: handshakes
// refused, 10 sessions closed over the 10 s window one per second slot
// (counted), one WARN. Ended with no other member live: nothing closed,
// logged. Renewed: handshakes admitted, one INFO, the rest of the plan
// dropped.
func TestLeaseLost(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const lease = 3 * time.Second
	w := &leaseWorld{now: t0}
	for i := range 10 {
		w.sessions = append(w.sessions, fmt.Sprintf("a%d", i))
	}
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m := &Member{o: Options{MemberID: "s1"}, others: map[string]time.Time{}, heldUntil: t0.Add(lease)}
	renew := func() { // a renewal of s1 that the store took, at the clock's now
		m.mu.Lock()
		m.heldUntil = w.Now().Add(lease)
		m.mu.Unlock()
	}
	var logs syncBuf
	l := NewLeaseLost(LeaseLostOptions{
		State: m.LeaseState, Sessions: w.Sessions, Close: w.Close, Window: 10 * time.Second,
		Now: w.Now, Rand: func() float64 { return 0.5 }, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: metrics,
	})
	closedTotal := func() int { return int(testutil.ToFloat64(metrics.leaseLostClosed)) }

	// Lease live, s2 live too: nothing.
	m.noteLease("s2", t0.Add(lease))
	m.noteLease("s1", t0.Add(time.Hour)) // its own announcement is not another member's
	for range 5 {
		if n := l.Step(); n != 0 {
			t.Fatalf("lease live: %d sessions closed", n)
		}
		if err := l.Admit(); err != nil {
			t.Fatalf("lease live: handshake refused: %v", err)
		}
		w.advance(500 * time.Millisecond) // 2.5 s: s1's lease still runs
	}

	// s1's renewals fail; s2 keeps announcing its renewals.
	w.advance(time.Second) // 3.5 s: s1's lease ended at 3 s
	m.noteLease("s2", w.Now().Add(lease))
	if n := l.Step(); n != 0 {
		t.Fatalf("first step after the lease ended: %d closed, want 0 (the first close is half a slot later)", n)
	}
	if err := l.Admit(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("lease ended: Admit = %v, want ErrLeaseLost", err)
	}
	// One slot of 1 s per session, each closed mid-slot (Rand 0.5).
	for sec := 1; sec <= 10; sec++ {
		w.advance(time.Second)
		m.noteLease("s2", w.Now().Add(lease))
		if n := l.Step(); n != 1 {
			t.Fatalf("second %d of the window: %d closed in one step, want 1 (bounded rate)", sec, n)
		}
		if got := w.nClosed(); got != sec {
			t.Fatalf("second %d: %d closed in all, want %d", sec, got, sec)
		}
		if err := l.Admit(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("second %d: Admit = %v", sec, err)
		}
	}
	if len(w.Sessions()) != 0 || closedTotal() != 10 {
		t.Fatalf("after the window: sessions left %v, counter %d, want none and 10", w.Sessions(), closedTotal())
	}
	if n := logs.lines("WARN", "another member's is live"); n != 1 {
		t.Errorf("WARN lines on giving up the sessions: %d, want 1:\n%s", n, logs.b.String())
	}

	// Renewed: handshakes admitted again, one INFO.
	renew()
	l.Step()
	if err := l.Admit(); err != nil {
		t.Fatalf("lease renewed: handshake refused: %v", err)
	}
	if n := logs.lines("INFO", "renewed again"); n != 1 {
		t.Errorf("INFO lines on the lease back: %d, want 1:\n%s", n, logs.b.String())
	}

	// Ended again with nobody else live (the database down for everyone):
	// new sessions stay, logged once; handshakes refused.
	for i := range 4 {
		w.sessions = append(w.sessions, fmt.Sprintf("b%d", i))
	}
	w.advance(lease + time.Second) // s1's and s2's leases both ended
	for range 30 {
		if n := l.Step(); n != 0 {
			t.Fatalf("no other member live: %d closed", n)
		}
		if err := l.Admit(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("lease ended, nobody live: Admit = %v", err)
		}
		w.advance(time.Second)
	}
	if len(w.Sessions()) != 4 || closedTotal() != 10 {
		t.Errorf("no other member live: sessions %v, counter %d, want 4 kept and 10", w.Sessions(), closedTotal())
	}
	if n := logs.lines("WARN", "sessions are kept: no other member is live"); n != 1 {
		t.Errorf("WARN lines on keeping the sessions: %d, want 1:\n%s", n, logs.b.String())
	}

	// s2 is back (its announcement arrives): the closes start, then s1's
	// lease is renewed midway: the rest stay.
	m.noteLease("s2", w.Now().Add(lease))
	l.Step() // plan: 4 sessions over 10 s, 2.5 s slots
	w.advance(3 * time.Second)
	if n := l.Step(); n != 1 {
		t.Fatalf("3 s into the second window: %d closed, want 1", n)
	}
	renew()
	w.advance(20 * time.Second)
	m.noteLease("s2", w.Now().Add(lease))
	renew()
	if n := l.Step(); n != 0 || len(w.Sessions()) != 3 || l.Admit() != nil {
		t.Errorf("renewed midway: %d closed, sessions %v, Admit %v; want 0, 3 kept, admitted", n, w.Sessions(), l.Admit())
	}
	if n := logs.lines("INFO", "renewed again"); n != 2 {
		t.Errorf("INFO lines on the lease back: %d, want 2", n)
	}
}

// TestLeaseLostSpread: with the real random jitter, n sessions are closed
// within the window, never more than two in one slot.
func TestLeaseLostSpread(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := &leaseWorld{now: t0}
	for i := range 100 {
		w.sessions = append(w.sessions, fmt.Sprintf("a%d", i))
	}
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	l := NewLeaseLost(LeaseLostOptions{
		State:    func(time.Time) (bool, bool) { return false, true },
		Sessions: w.Sessions, Close: w.Close, Window: 10 * time.Second, Now: w.Now, Metrics: metrics,
	})
	slot := 100 * time.Millisecond
	for i := range 100 {
		if n := l.Step(); n > 2 {
			t.Fatalf("slot %d: %d closed at once", i, n)
		}
		w.advance(slot)
	}
	l.Step()
	if len(w.Sessions()) != 0 {
		t.Fatalf("after the window: %d sessions left", len(w.Sessions()))
	}
}
