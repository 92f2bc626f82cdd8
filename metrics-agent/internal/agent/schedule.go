package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/metrics-agent/internal/collect"
)

// jobStatus is the pseudo-job of the hm_agent_status push in the schedule.
const jobStatus = "status"

// loop runs the schedules until ctx is done.
func (a *Agent) loop(ctx context.Context) {
	next := map[string]time.Time{} // absent: due now
	for ctx.Err() == nil {
		now := a.clock.Now()
		enabled := a.Enabled()
		var due []string
		var wakeAt time.Time
		for _, j := range append(enabled, jobStatus) {
			t, ok := next[j]
			if !ok || !t.After(now) {
				due = append(due, j)
			} else if wakeAt.IsZero() || t.Before(wakeAt) {
				wakeAt = t
			}
		}
		for j := range next { // a stopped job runs at once when started again
			if j != jobStatus && !slices.Contains(enabled, j) {
				delete(next, j)
			}
		}
		if len(due) > 0 {
			if a.rt.Connected() {
				done := a.run(ctx, due)
				after := a.clock.Now()
				for _, j := range done {
					iv := a.interval(j)
					t, ok := next[j]
					if !ok || t.IsZero() {
						t = now
					}
					if t = t.Add(iv); !t.After(after) {
						t = after.Add(iv) // late: skip the missed ticks
					}
					next[j] = t
				}
				if len(done) == len(due) {
					continue
				}
			}
			// Disconnected, or the link dropped during the run: the due jobs
			// wait for it. That is a matter of the network, not of the
			// schedule, so it is real time whatever the Clock.
			if !a.sleep(ctx, a.opts.Retry) {
				next[jobStatus] = time.Time{}
			}
			continue
		}
		c, stop := a.clock.After(wakeAt.Sub(now))
		select {
		case <-c:
		case <-a.wake:
			next[jobStatus] = time.Time{} // report the change at once
		case <-ctx.Done():
		}
		stop()
	}
}

// sleep waits d of real time, or for a job change (false), or for ctx.
func (a *Agent) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.wake:
		return false
	case <-ctx.Done():
	}
	return true
}

func (a *Agent) interval(job string) time.Duration {
	if job == jobStatus {
		return a.opts.StatusInterval
	}
	return a.cfg.Task.Interval(job)
}

// run pushes the status when due, then collects and pushes the due jobs,
// and returns those that are done (sent, or failed for another reason than
// a lost connection, which leaves a job due).
func (a *Agent) run(ctx context.Context, due []string) (done []string) {
	// The status goes first: after a change of jobs the server learns it
	// at once, not after a process walk.
	if slices.Contains(due, jobStatus) {
		if err := a.push(ctx, &protocol.Msg{Type: protocol.TypeHMAgentStatus, Payload: a.Status()}); !errors.Is(err, errNoConnection) {
			done = append(done, jobStatus)
		}
	}
	var req collect.Request
	var dyn []string
	for _, j := range due {
		switch j {
		case JobStatic:
			if a.pushStatic(ctx) {
				done = append(done, j)
			}
		case JobUsage:
			req.Usage = true
			dyn = append(dyn, j)
		case JobProcess:
			req.Process, req.Top = true, int(a.cfg.Task.Process.Top)
			dyn = append(dyn, j)
		case JobConns:
			if len(a.cfg.Task.Conns.Allow) == 0 { // nothing allowed: nothing to send
				done = append(done, j)
				continue
			}
			req.Connections, req.Kinds = true, a.cfg.Task.Conns.Allow
			dyn = append(dyn, j)
		case JobTemps:
			req.Temperatures = true
			dyn = append(dyn, j)
		}
	}
	if len(dyn) > 0 {
		rep, ws := a.col.Dynamic(ctx, req)
		a.warn("push", ws)
		done = append(done, a.pushDynamic(ctx, rep, dyn)...)
	}
	return done
}

func (a *Agent) pushStatic(ctx context.Context) bool {
	st, ws := a.col.Static(ctx)
	a.warn("static", ws)
	err := a.push(ctx, &protocol.Msg{Type: protocol.TypeHMStaticRep, Payload: &st.HMStatic})
	if err == nil {
		a.count(JobStatic, &st.HMStatic)
	}
	return !errors.Is(err, errNoConnection)
}

// pushDynamic sends the categories of rep, in one message to our server or
// one per category to a v1 server, and returns the jobs that are done.
func (a *Agent) pushDynamic(ctx context.Context, rep protocol.HMDynamicRep, jobs []string) (done []string) {
	if a.multiCategory() {
		err := a.push(ctx, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &rep})
		if err == nil {
			for _, j := range jobs {
				a.count(j, categoryOf(&rep, j))
			}
		}
		if errors.Is(err, errNoConnection) {
			return nil
		}
		return jobs
	}
	for _, j := range jobs {
		one := protocol.HMDynamicRep{Begin: rep.Begin, End: rep.End}
		switch j {
		case JobUsage:
			one.Usage = rep.Usage
		case JobProcess:
			one.Process = rep.Process
		case JobConns:
			one.Connections = rep.Connections
		case JobTemps:
			one.Temperatures = rep.Temperatures
		}
		err := a.push(ctx, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &one})
		if err == nil {
			a.count(j, categoryOf(&one, j))
		}
		if !errors.Is(err, errNoConnection) {
			done = append(done, j)
		}
	}
	return done
}

func categoryOf(rep *protocol.HMDynamicRep, job string) any {
	switch job {
	case JobUsage:
		return rep.Usage
	case JobProcess:
		return rep.Process
	case JobConns:
		return rep.Connections
	}
	return rep.Temperatures
}

// count adds one report of job with payload v to its counters.
func (a *Agent) count(job string, v any) {
	b, _ := json.Marshal(v) // the payload encoded fine a moment ago
	a.mu.Lock()
	s := a.stats[job]
	s.count++
	s.bytes += uint64(len(b))
	a.mu.Unlock()
}

// push sends m; errNoConnection means the link was down.
func (a *Agent) push(ctx context.Context, m *protocol.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.PushTimeout)
	defer cancel()
	err := a.rt.Push(ctx, m)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, libagent.ErrNotConnected):
		return errNoConnection
	default:
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			a.log.Warn("push dropped", "type", m.Type, "err", err)
		}
		return err
	}
}
