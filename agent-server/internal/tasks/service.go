// Package tasks runs fleet tasks (one command or script on a selection of
// agents, with rollout control) and layouts (a playbook of exec and file
// steps per agent, package layout) on top of an [Executor] (the exec
// service), and keeps their state in the store.
//
// # Fleet tasks
//
// A task is a store task of kind fleet whose spec is the request plus the
// resolved agent ids in launch order, and one store result per agent:
// pending, running, ok, failed, timed_out, skipped or lost. Agents offline
// at the start are lost ("agent offline at start"), unless the request
// sets wait_offline: then each is waited for, when its turn comes, until
// that long after the start. Package rollout launches the agents; the
// exec service records each command's result and output under the task.
// Agents the rollout never launched are skipped with the reason
// (max_errors, canary, cancelled). The task ends done, failed (stopped by
// max_errors or the canary) or cancelled.
//
// Cancel: nothing new starts and running commands are killed (their
// results say "killed: task cancelled").
//
// # Restart
//
// Closing the Service (server shutdown) stops the runners without killing
// or skipping anything: the task stays running in the store. Resume, at
// start-up, picks up every running fleet task: final results are kept;
// agents that were running (or lost) are waited for until their journaled
// result arrives through the exec service (or until their timeout plus
// Options.ResumeWait passed: then they stay lost with a message saying
// so); pending agents are launched, waiting up to Options.ResumeWait for
// them to reconnect. Failures already recorded count against max_errors.
// Layouts are not resumed: a running layout is marked failed with a
// message, its unfinished nodes and steps lost or skipped.
//
// # Events
//
// Subscribe follows a task: state changes of each agent and its output in
// order (with the offset of each piece), then a done event. Output is read
// from the exec service only while someone listens.
//
// # Concurrency
//
// A Service is safe for concurrent use; every goroutine it starts is
// waited for by Close.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/jkframe/stat"
)

// Sentinel errors.
var (
	// ErrInvalid: a bad request (HTTP 400); a *fault.Error whose message
	// names the field.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such task (404).
	ErrNotFound = errors.New("not found")
	// ErrAgentNotFound: a requested agent is unknown or offline (404); a
	// *fault.Error of kind NotFound naming it.
	ErrAgentNotFound = errors.New("agent not found")
	// ErrAgentType: a requested agent is not an exec-agent (424).
	ErrAgentType = errors.New("invalid agent type")
	// ErrFinished: the task already ended (409).
	ErrFinished = errors.New("task already finished")
	// ErrClosed: the service is shutting down (503).
	ErrClosed = errors.New("task service closed")
)

// ExecAgent is the agent type commands run on.
const ExecAgent = "exec-agent"

// Store is the part of the store the service uses: fleet tasks, their
// results and output, and the agents they target.
type Store interface {
	GetAgent(ctx context.Context, id string) (store.Agent, error)
	ListAgents(ctx context.Context, f store.AgentFilter) ([]store.Agent, int, error)
	CreateTask(ctx context.Context, t store.Task) (store.Task, error)
	GetTask(ctx context.Context, id string) (store.Task, error)
	ListTasks(ctx context.Context, f store.TaskFilter) ([]store.Task, int, error)
	UpdateTaskState(ctx context.Context, id string, state store.TaskState, at time.Time, msg string) error
	PutResults(ctx context.Context, rs []store.Result) error
	GetResult(ctx context.Context, taskID, agentID string) (store.Result, error)
	ListResults(ctx context.Context, taskID string, f store.ResultFilter) ([]store.Result, int, error)
	ReadOutput(ctx context.Context, taskID, agentID string, offset, length int64) ([]byte, int64, error)
	OutputSize(ctx context.Context, taskID, agentID string) (int64, error)
}

// Options configure New.
type Options struct {
	Store Store    // required
	Exec  Executor // required
	// Install runs the installs of fleet install tasks; nil: refused.
	Install Installer
	// Logger; discard when nil.
	Logger *slog.Logger
	// Registerer gets the in-flight gauge and the launch counter; none when nil.
	Registerer prometheus.Registerer
	// ResultDir holds files pulled by layouts (<ResultDir>/<task>/<agent>/...).
	ResultDir string
	// ResumeWait is how long a resumed task waits for agents to reconnect
	// (and for journaled results beyond their timeout). Default 1 min.
	ResumeWait time.Duration
	// KillWait is how long a cancelled command's end is waited for after
	// the kill. Default 10 s.
	KillWait time.Duration
	// Poll is the interval of store polls while waiting for results of a
	// resumed task and of online checks. Default 200 ms.
	Poll time.Duration
	// PullLimit bounds a file pulled by a layout. Default 1 GiB.
	PullLimit int64
	// Upgrader runs agents' self-updates (upgrade tasks); none when nil.
	Upgrader Upgrader
	// Owner, on a cluster member, makes the service own the tasks it
	// creates and take over those of members whose lease ended (owner.go);
	// the Store must then be a store.TaskOwnerStore. nil on a single
	// server: tasks are unowned, and Resume picks them up at start.
	Owner Owner
}

// Service runs fleet tasks and layouts.
type Service struct {
	o   Options
	st  Store
	x   Executor
	log *slog.Logger

	ctx  context.Context // ended by Close
	stop context.CancelFunc
	wg   sync.WaitGroup

	inflight prometheus.Gauge
	launched prometheus.Counter

	ost store.TaskOwnerStore // set with Options.Owner

	mu     sync.Mutex
	owned  map[string]int64 // owner token of each task this member owns and runs (cluster)
	runs   map[string]*run
	lastHW map[string]int // high-water marks of runs that ended (bounded)
	closed bool
}

// run is a task being executed in this process.
type run struct {
	id        string
	kind      store.TaskKind
	cancel    context.CancelCauseFunc
	events    *broker
	highWater int
	inFlight  int
	done      chan struct{}
}

// errCancelled is the cause of a cancelled run's context.
var errCancelled = errors.New("task cancelled")

// New returns a Service. Call Resume once the hub serves.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Exec == nil {
		return nil, fmt.Errorf("tasks: %w", fault.Invalidf(ErrInvalid, "Store and Exec are required"))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ResumeWait <= 0 {
		o.ResumeWait = time.Minute
	}
	if o.KillWait <= 0 {
		o.KillWait = 10 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.PullLimit <= 0 {
		o.PullLimit = 1 << 30
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{o: o, st: o.Store, x: o.Exec, log: o.Logger, ctx: ctx, stop: cancel, runs: map[string]*run{}, lastHW: map[string]int{}, owned: map[string]int64{}}
	if o.Owner != nil {
		ost, ok := o.Store.(store.TaskOwnerStore)
		if !ok {
			cancel()
			return nil, fmt.Errorf("tasks: %w", fault.Invalidf(ErrInvalid, "the store (%T) keeps no task owners", o.Store))
		}
		s.ost = ost
	}
	r := stat.New(o.Registerer, "agentserver")
	s.inflight = r.Gauge("task_commands_in_flight", "Commands of fleet tasks and layouts running now.")
	s.launched = r.Counter("task_commands_launched_total", "Commands launched by fleet tasks and layouts.")
	if err := r.Err(); err != nil {
		cancel()
		return nil, fmt.Errorf("tasks: register metrics: %w", err)
	}
	return s, nil
}

// Close stops every runner without cancelling its task (it is resumed at
// the next start) and waits for them.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
}

// start registers a run and starts fn on a goroutine owned by s.
func (s *Service) start(id string, kind store.TaskKind, fn func(ctx context.Context, r *run)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.runs[id]; ok {
		return fault.Invalidf(ErrInvalid, "task %s is already running", id)
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	r := &run{id: id, kind: kind, cancel: cancel, events: newBroker(), done: make(chan struct{})}
	s.runs[id] = r
	s.wg.Go(func() {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("tasks: runner panicked", "task", id, "panic", p)
			}
			s.mu.Lock()
			delete(s.runs, id)
			if len(s.lastHW) >= 1000 {
				clear(s.lastHW)
			}
			s.lastHW[id] = r.highWater
			delete(s.owned, id)
			s.mu.Unlock()
			cancel(nil)
			close(r.done)
		}()
		fn(ctx, r)
	})
	return nil
}

func (s *Service) lookup(id string) *run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[id]
}

// gauge tracks a run's commands in flight.
func (s *Service) gauge(r *run, delta int) {
	s.mu.Lock()
	r.inFlight += delta
	r.highWater = max(r.highWater, r.inFlight)
	s.mu.Unlock()
	s.inflight.Add(float64(delta))
	if delta > 0 {
		s.launched.Add(float64(delta))
	}
}

// HighWater returns the largest number of commands a task had in flight
// at once in this process, and whether the task runs here now.
func (s *Service) HighWater(id string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runs[id]
	if !ok {
		return s.finishedHW(id)
	}
	return r.highWater, true
}

// finishedHW is the high-water mark of a run that ended (s.mu held).
func (s *Service) finishedHW(id string) (int, bool) {
	hw, ok := s.lastHW[id]
	return hw, ok
}

// Subscribe follows a running task's events; ErrFinished when it does
// not run (any more) in this process.
func (s *Service) Subscribe(id string) (*Subscription, error) {
	r := s.lookup(id)
	if r == nil {
		return nil, ErrFinished
	}
	return r.events.subscribe(), nil
}

// Cancel cancels a task: nothing new starts, running commands are killed.
// It returns once the runner has finished, or when ctx ends while it is
// still waiting for kills to be confirmed.
func (s *Service) Cancel(ctx context.Context, id string, kind store.TaskKind) error {
	t, err := s.st.GetTask(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && t.Kind != kind {
		return fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	r := s.lookup(id)
	if r == nil {
		if t.State.Final() {
			return fmt.Errorf("task %s: %w (%s)", id, ErrFinished, t.State)
		}
		// Not run by this process (another server of a cluster, or not resumed yet).
		if err := s.st.UpdateTaskState(ctx, id, store.TaskCancelled, time.Now(), errCancelled.Error()); err != nil {
			return fmt.Errorf("cancel task %s: %w", id, err)
		}
		return nil
	}
	r.cancel(errCancelled)
	select {
	case <-r.done:
	case <-ctx.Done(): // still killing: the task ends cancelled all the same
	}
	return nil
}

// cancelled reports whether ctx ended because the task was cancelled (not
// because the service closes).
func cancelled(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errCancelled)
}

// putResults stores results, logging a failure (the runner goes on).
func (s *Service) putResults(rs ...store.Result) {
	if len(rs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(rs) > 0 {
		n := min(len(rs), 1000)
		if err := s.st.PutResults(ctx, rs[:n]); err != nil {
			s.log.Error("tasks: store results", "task", rs[0].TaskID, "n", n, "err", err)
		}
		rs = rs[n:]
	}
}

// setState stores a task state, logging a failure. On a cluster member
// the change is fenced by the task's owner token: refused when another
// member took the task over.
func (s *Service) setState(id string, st store.TaskState, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	token := s.ownerToken(id)
	switch {
	case token > 0:
		err = s.ost.UpdateTaskStateOwned(ctx, id, token, st, time.Now(), msg)
	case s.o.Owner != nil:
		// A member writes only the tasks it owns: this one was taken over.
		s.log.Warn("tasks: task state not stored: this member does not own the task (any more)", "task", id, "state", st)
		return
	default:
		err = s.st.UpdateTaskState(ctx, id, st, time.Now(), msg)
	}
	if err != nil {
		s.log.Error("tasks: store task state", "task", id, "state", st, "err", err)
	}
}

// allResults reads every result of a task.
func (s *Service) allResults(ctx context.Context, id string) ([]store.Result, error) {
	var out []store.Result
	for page := 1; ; page++ {
		rs, total, err := s.st.ListResults(ctx, id, store.ResultFilter{Paging: store.Paging{Page: page, Size: store.MaxPageSize}})
		if err != nil {
			return nil, fmt.Errorf("read results of task %s: %w", id, err)
		}
		out = append(out, rs...)
		if len(rs) == 0 || len(out) >= total {
			return out, nil
		}
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // our own types always marshal
	}
	return b
}
