// Package rollout schedules one piece of work per item (an agent) with the
// rollout control of fleet tasks and layouts: a concurrency limit, a
// maximum of failures after which nothing new is launched, a canary batch
// that must pass before the rest starts, batches with a pause between
// them, a per-item timeout and cancellation.
//
// Semantics, decided here once:
//   - Concurrency N or N% of the items (at least 1); unset or 0: unlimited.
//   - MaxErrors N or N% of the items (rounded down) is the number of
//     failures tolerated: the launch that would follow the failure that
//     exceeds it never happens. MaxErrors 0 stops at the first failure;
//     unset never stops. Items already running are let finish.
//   - Canary N: the first N items run first (within the concurrency); the
//     rest starts only when every one of them passed.
//   - BatchWait > 0 turns the rolling window into batches of Concurrency
//     items (all items when unlimited): a batch starts when the previous
//     one has finished and BatchWait has passed. Waves, when given,
//     replace the batches (layout evenodd mode).
//   - Timeout bounds each item: its context ends then.
//   - Cancelling the context launches nothing more and cancels the
//     contexts of the running items; Run returns once they returned.
//
// Run counts the items in flight itself (Report.HighWater) and reports
// every change to Options.InFlight, so a limit is checked, not assumed.
package rollout

import (
	"context"
	"fmt"
	"time"

	"github.com/agentfleet/jkframe/backoff"

	"github.com/agentfleet/agent-server/internal/fault"
)

// Plan is the rollout control of a run.
type Plan struct {
	Concurrency Limit         `json:"concurrency"`
	MaxErrors   Limit         `json:"max_errors"`
	Canary      int           `json:"canary,omitempty"`
	BatchWait   time.Duration `json:"batch_wait,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
}

// Validate checks the parts of p that ParseLimit cannot.
func (p Plan) Validate() error {
	switch {
	case p.Canary < 0:
		return fault.Invalidf(ErrInvalid, "canary %d is negative", p.Canary)
	case p.BatchWait < 0:
		return fault.Invalidf(ErrInvalid, "batch_wait %s is negative", p.BatchWait)
	case p.Timeout < 0:
		return fault.Invalidf(ErrInvalid, "timeout %s is negative", p.Timeout)
	}
	return nil
}

// Func runs item i and reports whether it succeeded. It must return soon
// after ctx ends.
type Func func(ctx context.Context, i int) bool

// Options are the inputs of Run beyond the Plan.
type Options struct {
	Plan
	// Total is the number of items the percentages refer to; default
	// len(items). A resumed run passes the whole run's size.
	Total int
	// PriorFailures and PriorDone count items of a resumed run that ended
	// before: failures count against MaxErrors, finished items against
	// the canary.
	PriorFailures, PriorDone int
	// Waves, when not empty, are the sizes of consecutive waves of items
	// (each starts when the previous one ended); they replace Canary and
	// batches. Items beyond their sum form one last wave.
	Waves []int
	// InFlight, when set, is called with the number of items running
	// after every launch and every end (from Run's goroutine).
	InFlight func(n int)
}

// Stop reasons of Report.Reason.
const (
	ReasonMaxErrors = "max_errors exceeded"
	ReasonCanary    = "canary failed"
	ReasonCancelled = "cancelled"
)

// Report is what Run did.
type Report struct {
	Launched, Failed int
	// NotStarted are the items never launched, in order.
	NotStarted []int
	// Reason says why launching stopped early ("" when every item was
	// launched); Detail adds the numbers.
	Reason, Detail string
	// HighWater is the largest number of items in flight at once.
	HighWater int
}

// Run launches fn for each of items following o and returns when every
// launched one has returned.
func Run(ctx context.Context, items []int, o Options, fn Func) Report {
	total := o.Total
	if total <= 0 {
		total = len(items)
	}
	conc := o.Concurrency.Of(total)
	if conc <= 0 {
		conc = len(items)
		if o.Concurrency.Set && o.Concurrency.N > 0 { // a percentage rounding to 0
			conc = 1
		}
	}
	conc = max(conc, 1)
	tolerated := o.MaxErrors.Of(total)
	waves := o.waves(len(items), conc)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct{ ok bool }
	results := make(chan outcome)
	var rep Report
	failures := o.PriorFailures
	inflight := 0
	report := func() {
		rep.HighWater = max(rep.HighWater, inflight)
		if o.InFlight != nil {
			o.InFlight(inflight)
		}
	}
	wait := func() {
		r := <-results
		inflight--
		if !r.ok {
			rep.Failed++
			failures++
		}
		report()
	}
	stopped := func() bool {
		if rep.Reason != "" {
			return true
		}
		if tolerated >= 0 && failures > tolerated {
			rep.Reason = ReasonMaxErrors
			rep.Detail = fmt.Sprintf("%d failed, %d tolerated (max_errors %s of %d)", failures, tolerated, o.MaxErrors, total)
			return true
		}
		if ctx.Err() != nil {
			rep.Reason = ReasonCancelled
			return true
		}
		return false
	}
	next := 0
	for wi, w := range waves {
		end := next + w.size
		waveFailures := rep.Failed
		for next < end && !stopped() {
			if inflight >= conc {
				wait()
				continue
			}
			i := items[next]
			next++
			inflight++
			rep.Launched++
			report()
			ictx, icancel := ctx, context.CancelFunc(func() {})
			if o.Timeout > 0 {
				ictx, icancel = context.WithTimeout(ctx, o.Timeout)
			}
			go func() {
				defer icancel()
				results <- outcome{fn(ictx, i)}
			}()
		}
		for inflight > 0 {
			wait()
		}
		if stopped() {
			break
		}
		if w.canary && rep.Failed > waveFailures {
			rep.Reason = ReasonCanary
			rep.Detail = fmt.Sprintf("%d of %d canary items failed", rep.Failed-waveFailures, w.size)
			break
		}
		if wi < len(waves)-1 && w.pause > 0 {
			_ = backoff.Sleep(ctx, nil, w.pause) // cancelled: stopped() tells
			if stopped() {
				break
			}
		}
	}
	rep.NotStarted = append([]int(nil), items[next:]...)
	if len(rep.NotStarted) == 0 { // everything ran: nothing was stopped
		rep.Reason, rep.Detail = "", ""
	}
	return rep
}

type wave struct {
	size   int
	canary bool
	pause  time.Duration // after this wave
}

// waves splits n items into the waves Run goes through.
func (o Options) waves(n, conc int) []wave {
	var out []wave
	left := n
	take := func(k int, canary bool, pause time.Duration) {
		k = min(k, left)
		if k <= 0 {
			return
		}
		out = append(out, wave{size: k, canary: canary, pause: pause})
		left -= k
	}
	if len(o.Waves) > 0 {
		for _, k := range o.Waves {
			take(k, false, o.BatchWait)
		}
		take(left, false, 0)
		return out
	}
	if c := o.Canary - o.PriorDone; c > 0 {
		take(c, true, o.BatchWait)
	}
	if o.BatchWait > 0 {
		for left > 0 {
			take(conc, false, o.BatchWait)
		}
	}
	take(left, false, 0)
	return out
}
