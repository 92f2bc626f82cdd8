package rollout

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/agent-server/internal/casetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var limitCases = []casetest.Case[string, Limit]{
	{In: "", Want: Limit{}},
	{In: "0", Want: Count(0)},
	{In: "10", Want: Count(10)},
	{In: " 7 ", Want: Count(7)},
	{In: "10%", Want: Percent(10)},
	{In: "100%", Want: Percent(100)},
	{In: "0%", Want: Percent(0)},
	{In: "101%", Err: `invalid limit: "101%" is over 100%`},
	{In: "-1", Err: `invalid limit: "-1" is not N or N%`},
	{In: "+1", Err: `invalid limit: "+1" is not N or N%`},
	{In: "ten", Err: `invalid limit: "ten" is not N or N%`},
	{In: "%", Err: `invalid limit: "%" is not N or N%`},
	{In: "1.5", Err: `invalid limit: "1.5" is not N or N%`},
	{In: "99999999999", Err: `invalid limit: "99999999999" is too large`},
}

func TestParseLimit(t *testing.T) {
	casetest.Run(t, "ParseLimit", ParseLimit, limitCases, func(c casetest.Case[string, Limit], got Limit) {
		if back, _ := ParseLimit(got.String()); back != got {
			t.Errorf("round trip of %q: %+v", c.In, back)
		}
	})
}

func FuzzParseLimit(f *testing.F) {
	casetest.Seed(f, limitCases)
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimit(s)
		if err != nil {
			return
		}
		if l.Set && (l.N < 0 || l.Percent && l.N > 100) {
			t.Fatalf("%q gave %+v", s, l)
		}
		back, err := ParseLimit(l.String())
		if err != nil || back != l {
			t.Fatalf("%q: round trip %+v → %q → %+v, %v", s, l, l.String(), back, err)
		}
		if l.Of(1000) > MaxCount {
			t.Fatalf("%q: Of too large", s)
		}
	})
}

func TestLimitJSON(t *testing.T) {
	var v struct {
		A, B, C, D Limit
	}
	if err := json.Unmarshal([]byte(`{"A":5,"B":"25%","C":null,"D":"3"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != Count(5) || v.B != Percent(25) || v.C.Set || v.D != Count(3) {
		t.Fatalf("got %+v", v)
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"A":5,"B":"25%","C":null,"D":3}` {
		t.Fatalf("marshal: %s", b)
	}
	if err := json.Unmarshal([]byte(`{"A":"x%"}`), &v); err == nil || err.Error() != `invalid limit: "x%" is not N or N%` {
		t.Fatalf("bad limit: %v", err)
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// recorder runs items, failing those in fail, and records launch order and
// the concurrency it saw.
type recorder struct {
	mu      sync.Mutex
	order   []int
	fail    map[int]bool
	cur     atomic.Int64
	maxSeen atomic.Int64
	hold    time.Duration
}

func (r *recorder) run(ctx context.Context, i int) bool {
	n := r.cur.Add(1)
	defer r.cur.Add(-1)
	for {
		m := r.maxSeen.Load()
		if n <= m || r.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	r.mu.Lock()
	r.order = append(r.order, i)
	r.mu.Unlock()
	if r.hold > 0 {
		t := time.NewTimer(r.hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return !r.fail[i]
}

func TestMaxErrors(t *testing.T) {
	allFail := map[int]bool{}
	for i := range 10 {
		allFail[i] = true
	}
	cases := []struct {
		name     string
		max      Limit
		conc     Limit
		launched int
		reason   string
	}{
		{"count 2", Count(2), Count(1), 3, ReasonMaxErrors},
		{"count 0", Count(0), Count(1), 1, ReasonMaxErrors},
		{"20 percent of 10", Percent(20), Count(1), 3, ReasonMaxErrors},
		{"25 percent of 10 rounds down", Percent(25), Count(1), 3, ReasonMaxErrors},
		{"unset", Limit{}, Count(1), 10, ""},
		{"count 9", Count(9), Count(1), 10, ""},
		{"count 2 at concurrency 2", Count(2), Count(2), 4, ReasonMaxErrors},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &recorder{fail: allFail, hold: time.Second}
				rep := Run(t.Context(), seq(10), Options{Plan: Plan{Concurrency: c.conc, MaxErrors: c.max}}, r.run)
				if rep.Launched != c.launched || len(r.order) != c.launched || rep.Reason != c.reason {
					t.Fatalf("launched %d (ran %d), reason %q; want %d %q", rep.Launched, len(r.order), rep.Reason, c.launched, c.reason)
				}
				if len(rep.NotStarted) != 10-c.launched || rep.Failed != c.launched {
					t.Fatalf("not started %v, failed %d", rep.NotStarted, rep.Failed)
				}
			})
		})
	}
}

func TestMaxErrorsAmongSuccesses(t *testing.T) {
	// Items 2, 5 and 7 fail; max_errors 2 stops after the third failure.
	r := &recorder{fail: map[int]bool{2: true, 5: true, 7: true}}
	rep := Run(t.Context(), seq(10), Options{Plan: Plan{Concurrency: Count(1), MaxErrors: Count(2)}}, r.run)
	if !slices.Equal(r.order, seq(8)) || !slices.Equal(rep.NotStarted, []int{8, 9}) || rep.Failed != 3 {
		t.Fatalf("order %v, not started %v, failed %d", r.order, rep.NotStarted, rep.Failed)
	}
	if rep.Detail != "3 failed, 2 tolerated (max_errors 2 of 10)" {
		t.Fatalf("detail %q", rep.Detail)
	}
	// Prior failures of a resumed run count.
	r = &recorder{fail: map[int]bool{5: true}}
	rep = Run(t.Context(), []int{5, 6, 7}, Options{Plan: Plan{Concurrency: Count(1), MaxErrors: Count(2)}, Total: 10, PriorFailures: 2}, r.run)
	if !slices.Equal(r.order, []int{5}) || rep.Reason != ReasonMaxErrors {
		t.Fatalf("resumed: order %v, %+v", r.order, rep)
	}
}

func TestConcurrency(t *testing.T) {
	for _, c := range []struct {
		lim  Limit
		n    int
		want int
	}{{Count(3), 20, 3}, {Percent(10), 50, 5}, {Percent(1), 50, 1}, {Limit{}, 20, 20}, {Count(0), 20, 20}} {
		synctest.Test(t, func(t *testing.T) {
			r := &recorder{hold: time.Second}
			var gauge []int
			rep := Run(t.Context(), seq(c.n), Options{Plan: Plan{Concurrency: c.lim}, InFlight: func(n int) { gauge = append(gauge, n) }}, r.run)
			if rep.HighWater != c.want || int(r.maxSeen.Load()) != c.want || slices.Max(gauge) != c.want {
				t.Fatalf("%v of %d: high water %d, seen %d, gauge max %d; want %d", c.lim, c.n, rep.HighWater, r.maxSeen.Load(), slices.Max(gauge), c.want)
			}
			if rep.Launched != c.n || gauge[len(gauge)-1] != 0 {
				t.Fatalf("launched %d, last gauge %d", rep.Launched, gauge[len(gauge)-1])
			}
		})
	}
}

func TestCanary(t *testing.T) {
	r := &recorder{fail: map[int]bool{1: true}}
	rep := Run(t.Context(), seq(10), Options{Plan: Plan{Canary: 3}}, r.run)
	if rep.Reason != ReasonCanary || rep.Launched != 3 || !slices.Equal(rep.NotStarted, seq(10)[3:]) {
		t.Fatalf("%+v", rep)
	}
	if rep.Detail != "1 of 3 canary items failed" {
		t.Fatalf("detail %q", rep.Detail)
	}
	// A failure after the canary does not stop the rest.
	r = &recorder{fail: map[int]bool{5: true}}
	rep = Run(t.Context(), seq(10), Options{Plan: Plan{Canary: 3}}, r.run)
	if rep.Reason != "" || rep.Launched != 10 || rep.Failed != 1 {
		t.Fatalf("%+v", rep)
	}
}

func TestBatchWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		starts := map[int]time.Duration{}
		fn := func(ctx context.Context, i int) bool {
			mu.Lock()
			starts[i] = time.Since(start)
			mu.Unlock()
			time.Sleep(time.Second)
			return true
		}
		rep := Run(t.Context(), seq(7), Options{Plan: Plan{Concurrency: Count(2), Canary: 1, BatchWait: 10 * time.Second}}, fn)
		// canary [0] at 0; batch [1 2] at 1+10; [3 4] at 22; [5 6] at 33.
		want := map[int]time.Duration{0: 0, 1: 11 * time.Second, 2: 11 * time.Second, 3: 22 * time.Second, 4: 22 * time.Second, 5: 33 * time.Second, 6: 33 * time.Second}
		for i, d := range want {
			if starts[i] != d {
				t.Errorf("item %d started at %s, want %s", i, starts[i], d)
			}
		}
		if rep.Launched != 7 || rep.HighWater != 2 {
			t.Fatalf("%+v", rep)
		}
	})
}

func TestWaves(t *testing.T) {
	r := &recorder{fail: map[int]bool{2: true}}
	items := []int{0, 2, 4, 1, 3}
	rep := Run(t.Context(), items, Options{Plan: Plan{MaxErrors: Count(0)}, Waves: []int{3, 2}}, r.run)
	slices.Sort(r.order)
	if !slices.Equal(r.order, []int{0, 2, 4}) || !slices.Equal(rep.NotStarted, []int{1, 3}) || rep.Reason != ReasonMaxErrors {
		t.Fatalf("order %v, %+v", r.order, rep)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{hold: time.Hour}
		rep := Run(t.Context(), seq(3), Options{Plan: Plan{Timeout: time.Minute}}, r.run)
		if rep.Failed != 3 || rep.Reason != "" {
			t.Fatalf("timeout: %+v", rep)
		}
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			time.Sleep(90 * time.Minute)
			cancel()
		}()
		r = &recorder{hold: time.Hour}
		start := time.Now()
		rep = Run(ctx, seq(5), Options{Plan: Plan{Concurrency: Count(1)}}, r.run)
		if rep.Reason != ReasonCancelled || rep.Launched != 2 || !slices.Equal(rep.NotStarted, []int{2, 3, 4}) || time.Since(start) != 90*time.Minute {
			t.Fatalf("cancel: %+v after %s", rep, time.Since(start))
		}
	})
}

func TestPlanValidate(t *testing.T) {
	for _, c := range []struct {
		p   Plan
		err string
	}{
		{Plan{}, ""},
		{Plan{Canary: -1}, "invalid limit: canary -1 is negative"},
		{Plan{BatchWait: -time.Second}, "invalid limit: batch_wait -1s is negative"},
		{Plan{Timeout: -time.Second}, "invalid limit: timeout -1s is negative"},
	} {
		err := c.p.Validate()
		if (err == nil) != (c.err == "") || err != nil && err.Error() != c.err {
			t.Errorf("%+v: %v, want %q", c.p, err, c.err)
		}
	}
}
