package execsvc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/jkframe/backoff"
)

// Retry pauses of a flusher round that failed for a transient store error.
const (
	flushRetryMin = 50 * time.Millisecond
	flushRetryMax = 5 * time.Second
)

// flusher group-commits the store writes of all execs of a Service: execs
// mark themselves dirty (add), and its one goroutine takes everything
// pending in rounds. A round appends each exec's pending output, writes
// every dirty result in one PutResults call, moves own tasks to their
// final state, then closes the Done of the execs whose final state it
// stored. It starts a round as soon as there is work (no delay, so a lone
// exec keeps its latency); what arrives during a round waits for the next
// one, so batches grow with the load.
type flusher struct {
	v    *env
	wake chan struct{} // size 1: a round is wanted
	quit chan struct{} // closed by stop
	done chan struct{} // closed when run returns

	mu      sync.Mutex
	pend    map[*Exec]struct{} // dirty, for the next round
	next    *round             // the round that will take pend
	stopped bool
}

// round is one group commit; done is closed when it is over, and errs
// then holds the error of each exec whose writes failed.
type round struct {
	done chan struct{}
	errs map[*Exec]error
}

func newFlusher(v *env) *flusher {
	return &flusher{
		v: v, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		pend: make(map[*Exec]struct{}), next: &round{done: make(chan struct{})},
	}
}

// add marks e dirty for the next round and returns that round (nil once
// the flusher stopped).
func (f *flusher) add(e *Exec) *round {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return nil
	}
	f.pend[e] = struct{}{}
	r := f.next
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return r
}

// flushWait stores e's pending state and waits for the outcome.
func (f *flusher) flushWait(e *Exec) error {
	r := f.add(e)
	if r == nil {
		return fmt.Errorf("store task %s of agent %s: %w", e.tid, e.agentID, ErrClosed)
	}
	<-r.done
	return r.errs[e]
}

// stop ends run after a last round; the Service's readers and writers must
// have ended (they may wait on rounds).
func (f *flusher) stop() {
	close(f.quit)
	<-f.done
}

func (f *flusher) run() {
	defer close(f.done)
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	// Store errors are retried at 50 ms, 100 ms, ... 5 s: a local resource,
	// so no jitter.
	bo := backoff.Backoff{Initial: flushRetryMin, Max: flushRetryMax, NoJitter: true}
	var failed []*Exec
	for {
		last := false
		select {
		case <-f.wake:
		case <-retryC:
			retryC = nil
		case <-f.quit:
			last = true
		}
		if retryC == nil && len(failed) > 0 {
			f.mu.Lock()
			for _, e := range failed {
				f.pend[e] = struct{}{}
			}
			f.mu.Unlock()
			failed = nil
		}
		if last {
			f.mu.Lock()
			f.stopped = true
			f.mu.Unlock()
		}
		failed = append(failed, f.round()...)
		if last {
			return
		}
		switch {
		case len(failed) == 0:
			bo.Reset()
		case retryC == nil:
			d := bo.Next()
			if retry == nil {
				retry = time.NewTimer(d)
			} else {
				retry.Reset(d)
			}
			retryC = retry.C
		}
	}
}

// round runs one group commit of everything pending and returns the execs
// to retry (transient store errors).
func (f *flusher) round() (retry []*Exec) {
	f.mu.Lock()
	r, batch := f.next, f.pend
	f.next, f.pend = &round{done: make(chan struct{})}, make(map[*Exec]struct{})
	f.mu.Unlock()
	defer close(r.done)
	if len(batch) == 0 {
		return nil
	}
	v := f.v
	ctx, cancel := context.WithTimeout(context.WithoutCancel(v.ctx), 30*time.Second)
	defer cancel()
	errs := make(map[*Exec][]error)
	fail := func(e *Exec, what string, err error) {
		errs[e] = append(errs[e], err)
		v.log.Error("execsvc: store "+what, "agent", e.agentID, "task", e.tid, "err", err)
	}

	// Output first: the result's Dropped depends on what the store kept.
	execs := make([]*Exec, 0, len(batch))
	for e := range batch {
		execs = append(execs, e)
		if err := e.storeOutput(ctx); err != nil {
			fail(e, "output", err)
		}
	}

	type taskUpdate struct {
		e     *Exec
		state store.TaskState
		msg   string
	}
	var (
		rs     []store.Result
		owners []*Exec
		tasks  []taskUpdate
		final  = make(map[*Exec]bool, len(execs))
	)
	for _, e := range execs {
		e.mu.Lock()
		if e.resDirty {
			rs = append(rs, e.snapshotLocked())
			owners = append(owners, e)
			e.resDirty = false
		}
		if e.taskState != "" {
			tasks = append(tasks, taskUpdate{e, e.taskState, e.taskMsg})
			e.taskState = ""
		}
		final[e] = !e.finalAt.IsZero()
		e.mu.Unlock()
	}
	failRes := func(e *Exec, err error) {
		fail(e, "result", err)
		if !permanent(err) {
			e.mu.Lock()
			e.resDirty = true
			e.mu.Unlock()
		}
	}
	if len(rs) > 0 && len(tasks) > 0 {
		// Finished execs: results and task states in one commit. On an
		// error nothing was stored, and the writes below (one call each,
		// rows one by one for a permanent error) find what failed.
		cs := make([]store.TaskStateChange, len(tasks))
		at := v.now()
		for i, t := range tasks {
			cs[i] = store.TaskStateChange{ID: t.e.tid, State: t.state, At: at, Msg: t.msg}
		}
		if err := v.journal.PutResultsStates(ctx, rs, cs); err == nil {
			rs, tasks = nil, nil
		} else {
			v.log.Debug("execsvc: combined store write failed, writing one by one", "results", len(rs), "tasks", len(tasks), "err", err)
		}
	}
	if len(rs) > 0 {
		err := v.journal.PutResults(ctx, rs)
		switch {
		case err == nil:
		case len(rs) > 1 && permanent(err):
			// One bad row (say a task deleted meanwhile) fails the whole
			// batch: store the rows one by one to find it.
			for i := range rs {
				if err := v.journal.PutResults(ctx, rs[i:i+1]); err != nil {
					failRes(owners[i], err)
				}
			}
		default:
			for _, e := range owners {
				failRes(e, err)
			}
		}
	}
	for _, t := range tasks {
		err := v.journal.UpdateTaskState(ctx, t.e.tid, t.state, v.now(), t.msg)
		if err == nil || errors.Is(err, store.ErrConflict) {
			continue
		}
		fail(t.e, "task state", err)
		if !permanent(err) {
			t.e.mu.Lock()
			if t.e.taskState == "" {
				t.e.taskState, t.e.taskMsg = t.state, t.msg
			}
			t.e.mu.Unlock()
		}
	}

	r.errs = make(map[*Exec]error, len(errs))
	for e, es := range errs {
		r.errs[e] = fmt.Errorf("store task %s of agent %s: %w", e.tid, e.agentID, errors.Join(es...))
	}
	requeue := false
	for _, e := range execs {
		e.mu.Lock()
		dirty := e.resDirty || e.taskState != ""
		output := len(e.pend) > 0 && !e.storeFull
		e.mu.Unlock()
		_, failed := errs[e]
		switch {
		case failed && (dirty || output):
			retry = append(retry, e)
		case dirty:
			// Changed during the round: its writer (if still running) asked
			// for the next round already; make sure of it.
			f.mu.Lock()
			f.pend[e] = struct{}{}
			f.mu.Unlock()
			requeue = true
		}
		// The outcome is known once a final state was written, or its write
		// failed (it is retried; waiters need not wait for the store).
		if final[e] && (failed || !dirty) {
			e.closeDone()
		}
	}
	if requeue {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
	return retry
}

// permanent reports store errors a retry cannot fix.
func permanent(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid)
}

// storeOutput appends the output waiting for the store (flusher only).
func (e *Exec) storeOutput(ctx context.Context) error {
	e.mu.Lock()
	e.inflight, e.pend = e.pend, nil
	chunk, off := e.inflight, e.stored
	e.mu.Unlock()
	if len(chunk) == 0 {
		return nil
	}
	// At its offset: an append retried after an error that was in fact
	// stored (a commit whose answer was lost) is not stored twice.
	kept, err := e.env.journal.AppendOutputAt(ctx, e.tid, e.agentID, off, chunk)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stored += int64(kept)
	switch {
	case err != nil && !permanent(err):
		// Keep it for the retry, in front of what came meanwhile.
		if !e.storeFull {
			e.pend = append(chunk[kept:len(chunk):len(chunk)], e.pend...)
			e.pendOff = e.stored
		}
	case kept < len(chunk):
		e.storeFull = true
		e.pend = nil
	}
	e.inflight = nil
	return err
}
