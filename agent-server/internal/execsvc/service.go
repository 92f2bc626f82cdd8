package execsvc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// Caps are the extensions this package implements above the hub; the
// server announces them in the handshake (hub.Options.ExtraCaps).
var Caps = []string{protocol.CapBulk, protocol.CapStream}

// Sentinel errors, for errors.Is.
var (
	// ErrInvalid: a bad Spec or argument (HTTP 400); such errors are
	// *fault.Error with the message for the caller.
	ErrInvalid = errors.New("invalid request")
	// ErrStartFailed: the agent answered execd with ok false (with its
	// *hub.AgentError, or a *fault.Error of kind Unavailable).
	ErrStartFailed = errors.New("command did not start")
	// ErrNoSuchTask: the agent has no running task with that id or pid.
	ErrNoSuchTask = errors.New("no such task")
	// ErrChecksum: transferred bytes do not match the MD5 or size the agent
	// reported.
	ErrChecksum = errors.New("invalid checksum")
	// ErrTransferNotFound: unknown, used or expired transfer URL.
	ErrTransferNotFound = errors.New("transfer not found")
	// ErrTransferToken: the X-Token header does not match.
	ErrTransferToken = errors.New("invalid transfer token")
	// ErrClosed: the service is shutting down.
	ErrClosed = errors.New("exec service closed")
)

// Store is the part of the store the service uses: the exec task, its
// per-agent results and their output streams.
type Store interface {
	CreateTaskResults(ctx context.Context, t store.Task, rs []store.Result) (store.Task, error)
	GetTask(ctx context.Context, id string) (store.Task, error)
	UpdateTaskState(ctx context.Context, id string, state store.TaskState, at time.Time, msg string) error
	PutResults(ctx context.Context, rs []store.Result) error
	PutResultsStates(ctx context.Context, rs []store.Result, cs []store.TaskStateChange) error
	GetResult(ctx context.Context, taskID, agentID string) (store.Result, error)
	ResultByPID(ctx context.Context, agentID string, pid int) (store.Result, error)
	AppendOutputAt(ctx context.Context, taskID, agentID string, off int64, p []byte) (int, error)
	ReadOutput(ctx context.Context, taskID, agentID string, offset, length int64) ([]byte, int64, error)
	OutputSize(ctx context.Context, taskID, agentID string) (int64, error)
}

// Options configure New. Zero fields take the default in their comment.
type Options struct {
	Hub    *hub.Hub // required
	Store  Store    // required
	Logger *slog.Logger
	// Now is the clock of task and result times; time.Now when nil.
	Now func() time.Time
	// CacheDir holds spooled transfers (required for files).
	CacheDir string

	// Limits are the sizes and windows every exec works within.
	Limits
	// Registry gets the service's metrics; nil: not exported.
	Registry prometheus.Registerer
	// Retain is how long a finished exec stays in memory for status and pty
	// calls by pid. Default 10 min.
	Retain time.Duration
	// AdoptTimeout is the timeout assumed for a task adopted from the store
	// after a restart. Default 1 h.
	AdoptTimeout time.Duration
	// TransferTTL is the lifetime of a one-shot transfer URL. Default 10 min.
	TransferTTL time.Duration
}

// Limits are the sizes and windows of an exec (part of Options; an Exec
// keeps a copy). Zero fields take the default in their comment.
type Limits struct {
	// HeadSize and TailSize are the output kept in memory and in the
	// result at each end. Default 4 KiB each.
	HeadSize, TailSize int
	// FlushBytes and FlushDelay batch output appends. Default 64 KiB and
	// 100 ms.
	FlushBytes int
	FlushDelay time.Duration
	// MaxPending bounds output waiting for a slow store; beyond it the
	// stored stream ends there (the rest counts as dropped). Default 8 MiB.
	MaxPending int
	// Grace is how long after its timeout an exec waits for the agent's
	// result before it is ended (timed_out, or lost when the agent is
	// away). Default 10 s.
	Grace time.Duration
	// LateData and LateDataMax: a legacy agent (neither stream.v1 nor
	// ack.v1, like jkstack 1.5's exec-agent) may send output after its
	// exec_done. Its result is made final — and a synchronous run answered
	// — once no output has arrived for LateData after exec_done, at most
	// LateDataMax after exec_done. Output that comes later still is
	// appended to the stored output (counted and logged). Defaults 500 ms
	// and 10 s.
	LateData, LateDataMax time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.HeadSize, 4<<10)
	def(&o.TailSize, 4<<10)
	def(&o.FlushBytes, 64<<10)
	def(&o.MaxPending, 8<<20)
	defD(&o.FlushDelay, 100*time.Millisecond)
	defD(&o.Grace, 10*time.Second)
	defD(&o.LateData, 500*time.Millisecond)
	defD(&o.LateDataMax, 10*time.Second)
	defD(&o.Retain, 10*time.Minute)
	defD(&o.AdoptTimeout, time.Hour)
	defD(&o.TransferTTL, 10*time.Minute)
}

// Service runs execs and file transfers. Create it with New, stop it with
// Close.
type Service struct {
	o     Options
	hub   *hub.Hub
	st    Store
	log   *slog.Logger
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	limit *rate.Limiter // log lines about agents' stray messages
	env   *env          // what its execs work with (the flusher included)
	m     *metrics

	mu     sync.Mutex
	execs  map[execKey]*Exec
	swept  time.Time
	closed bool

	xfers transfers
}

type execKey struct{ agent, tid string }

// New returns a Service and registers its handlers on the hub (journaled
// exec results, stray exec replies). Register before the hub serves.
func New(o Options) (*Service, error) {
	if o.Hub == nil || o.Store == nil {
		return nil, fmt.Errorf("execsvc: %w", fault.Invalidf(ErrInvalid, "Hub and Store are required"))
	}
	o.setDefaults()
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, fmt.Errorf("execsvc: metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		o: o, hub: o.Hub, st: o.Store, log: o.Logger, ctx: ctx, stop: cancel,
		limit: rate.NewLimiter(1, 5), m: m,
		execs: make(map[execKey]*Exec),
	}
	s.xfers.m = make(map[string]*transfer)
	s.env = &env{
		cfg: o.Limits, now: o.Now, journal: o.Store, agents: o.Hub, m: m, log: o.Logger, limit: s.limit,
		ctx: ctx, wg: &s.wg,
	}
	s.env.commit = newFlusher(s.env)
	go s.env.commit.run()
	s.hub.HandleJournal(s.onJournal)
	for _, t := range []protocol.Type{protocol.TypeExecd, protocol.TypeExecData, protocol.TypeExecDone} {
		s.hub.Handle(t, s.onStray)
	}
	return s, nil
}

// Close ends every exec's goroutines after a last store write and waits
// for them. Execs still running keep their stored state (running or lost);
// their agents' journaled results are adopted after a restart.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait() // writers end with a last flush through the flusher
	s.env.commit.stop()
	s.xfers.closeAll()
}

func (s *Service) register(e *Exec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	now := time.Now()
	if now.Sub(s.swept) > time.Second {
		s.swept = now
		for k, x := range s.execs {
			if x.retired(now, s.o.Retain) {
				delete(s.execs, k)
			}
		}
	}
	k := execKey{e.agentID, e.tid}
	if old, ok := s.execs[k]; ok && !old.isDone() {
		return fault.Invalidf(ErrInvalid, "task %s is already running on agent %s", e.tid, e.agentID)
	}
	s.execs[k] = e
	return nil
}

func (s *Service) lookup(agentID, tid string) *Exec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execs[execKey{agentID, tid}]
}

// Lookup returns the exec of agentID with that pid (most recent first),
// running or finished within Options.Retain, or nil.
func (s *Service) Lookup(agentID string, pid int) *Exec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *Exec
	for k, e := range s.execs {
		if k.agent != agentID || e.PID() != pid || pid == 0 {
			continue
		}
		if best == nil || e.created.After(best.created) {
			best = e
		}
	}
	return best
}

// Find returns the exec of agentID with that pid as Lookup does, and when
// memory has none (a server restart, or past Options.Retain) one rebuilt
// from the agent's stored result with that pid that started last, so 1.5's
// status and pty routes keep answering: its output is read from the store.
// A finished one is kept in memory for Options.Retain; one still waiting
// for its agent (the restart came while it ran) is not, so the agent's
// journal replay adopts the task as usual. Nil when the store has none.
func (s *Service) Find(ctx context.Context, agentID string, pid int) (*Exec, error) {
	if e := s.Lookup(agentID, pid); e != nil || pid <= 0 {
		return e, nil
	}
	res, err := s.st.ResultByPID(ctx, agentID, pid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find pid %d of agent %s: %w", pid, agentID, err)
	}
	stored, err := s.st.OutputSize(ctx, res.TaskID, agentID)
	if err != nil {
		return nil, fmt.Errorf("find pid %d of agent %s: %w", pid, agentID, err)
	}
	e := s.fromStore(res, stored, 0)
	if !res.State.Final() {
		return e, nil
	}
	e.finalAt = time.Now()
	e.closeDone()
	if err := s.register(e); err != nil {
		return e, nil // a live exec took the key meanwhile; this view still answers
	}
	if cur := s.Lookup(agentID, pid); cur != nil {
		return cur, nil
	}
	return e, nil
}

// fromStore rebuilds an exec from its stored result and output size.
func (s *Service) fromStore(res store.Result, stored int64, timeout time.Duration) *Exec {
	e := s.newExec(res.AgentID, res.TaskID, timeout, true)
	e.res = res
	e.stored = stored
	e.pendOff = stored
	e.agentEnd = stored
	e.total = max(res.OutputBytes, stored)
	e.head = append(e.head, res.OutputHead...)
	e.tail.write(res.OutputTail)
	e.startedOnce.Do(func() { close(e.started) })
	return e
}

// Task returns the in-memory exec of a task on an agent, or nil.
func (s *Service) Task(agentID, taskID string) *Exec { return s.lookup(agentID, taskID) }

// Running lists the execs of an agent the server believes are running.
func (s *Service) Running(agentID string) []*Exec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Exec
	for k, e := range s.execs {
		if k.agent == agentID && !e.isDone() && e.PID() != 0 {
			out = append(out, e)
		}
	}
	return out
}

// onJournal receives journaled exec messages that have no live stream:
// replays after a reconnect, or after a stream overflow.
func (s *Service) onJournal(sess *hub.Session, m *protocol.Msg) error {
	e := s.lookup(sess.ID(), m.TID)
	if e == nil {
		var err error
		if e, err = s.adopt(sess.ID(), m.TID); err != nil {
			return err
		}
		if e == nil {
			return nil // no such task (deleted, or never ours): nothing to keep
		}
	}
	e.feed(sess, m)
	if m.Type == protocol.TypeExecDone || m.Type == protocol.TypeExecData {
		// The hub acks after this returns: acknowledged means stored, the
		// output as the outcome. A store failure closes the session and
		// the agent replays from here; the exec_data offsets keep what
		// memory holds already from being appended twice.
		return e.flush()
	}
	return nil
}

// onStray receives exec replies without seq that have no live stream:
// late output of legacy agents, or replies after a stream overflow.
func (s *Service) onStray(sess *hub.Session, m *protocol.Msg) {
	if e := s.lookup(sess.ID(), m.TID); e != nil {
		e.feedStray(sess, m)
		return
	}
	if m.Type == protocol.TypeExecData && m.ExecData() != nil {
		s.m.late.WithLabelValues(lateDropped).Add(float64(base64.StdEncoding.DecodedLen(len(m.ExecData().Data))))
	}
	if s.limit.Allow() {
		s.log.Warn("execsvc: exec reply for an unknown task dropped", "agent", sess.ID(), "tid", m.TID, "type", m.Type.String())
	}
}

// adopt rebuilds an exec from its stored result so a replayed journal can
// complete it. It returns nil when there is nothing to complete.
func (s *Service) adopt(agentID, tid string) (*Exec, error) {
	if tid == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	res, err := s.st.GetResult(ctx, tid, agentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("adopt task %s of agent %s: %w", tid, agentID, err)
	}
	if res.State.Final() {
		return nil, nil
	}
	task, err := s.st.GetTask(ctx, tid)
	if err != nil {
		return nil, fmt.Errorf("adopt task %s: %w", tid, err)
	}
	stored, err := s.st.OutputSize(ctx, tid, agentID)
	if err != nil {
		return nil, fmt.Errorf("adopt task %s output: %w", tid, err)
	}
	e := s.fromStore(res, stored, s.o.AdoptTimeout)
	e.ownTask = task.Kind == store.KindExec || task.Kind == store.KindScript
	if err := s.register(e); err != nil {
		if cur := s.lookup(agentID, tid); cur != nil {
			return cur, nil
		}
		return nil, err
	}
	s.wg.Add(1)
	go e.writer()
	s.log.Info("execsvc: adopted a task from the store for its agent's replayed result", "agent", agentID, "task", tid)
	return e, nil
}

// HasCap reports whether the agent is connected with extension c in use.
func (s *Service) HasCap(agentID, c string) bool {
	sess, ok := s.hub.Session(agentID)
	return ok && sess.HasCap(c)
}

// LateDataMax returns how long after a legacy agent's exec_done its result
// may wait for late output (Options.LateDataMax).
func (s *Service) LateDataMax() time.Duration { return s.o.LateDataMax }

// CacheDir returns the directory of spooled transfers.
func (s *Service) CacheDir() string { return s.o.CacheDir }
