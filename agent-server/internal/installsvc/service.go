// Package installsvc installs software on hosts through their exec-agents
// (the seed's /install/run and /install/status, protocol extension
// install.v1): it sends install_run, stores each action the agent reports
// (install_action, install_done) in the store's install_actions table and
// the host's outcome as the task's result, and follows one host's install
// as a tasks.Handle, so that fleet tasks run installs with their rollout
// control and event stream.
//
// # Packages
//
// uri names a package of the server's repository (Packages). The server
// never holds it in memory: install_run carries a one-shot transfer path
// and token (the exec service's Offer), the agent GETs it, and the server
// streams the file from the repository as it is read. The repository's
// sha256 goes in install_run (unless the caller gave one), and the agent
// verifies it before installing anything. url is downloaded by the agent.
//
// # Outcome
//
// The agent journals every action on disk before sending it and sends its
// messages through its ack.v1 journal, so a dropped connection or a
// restarted agent loses nothing: a restarted agent reports an install its
// previous process left with install_done (restarted). The store keeps
// each action once by position; the host's result is ok or failed from the
// done action. When no outcome arrives within the install's timeout plus
// Options.Grace, the result is lost (a later report still replaces it).
// An agent that comes back while an install of it is not finished is
// asked about it with install_status_req (ask.go), so that an install_run
// that never reached it does not leave its host running until then.
//
// # Concurrency
//
// A Service is safe for concurrent use; Close waits for its goroutines.
package installsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/jkframe/stat"
)

// Sentinel errors.
var (
	// ErrNoCapability: the agent does not announce install.v1 (422).
	ErrNoCapability = errors.New("agent cannot install software")
	// ErrNoRepository: uri was given but the server has no repository.
	ErrNoRepository = errors.New("no package repository")
	// ErrPackageNotFound: uri names no package of the repository (404).
	ErrPackageNotFound = errors.New("package not found")
	// ErrClosed: the service is shutting down.
	ErrClosed = errors.New("install service closed")
)

// Caps are the capabilities the server announces for this service.
var Caps = []string{protocol.CapInstall}

// Package is a package of the repository as an install needs it.
type Package struct {
	Name   string
	Size   int64 // -1: unknown
	SHA256 string
}

// Packages is the server's package repository. Open returns
// ErrPackageNotFound (wrapped) for a name it does not hold.
type Packages interface {
	Open(ctx context.Context, name string) (io.ReadCloser, Package, error)
}

// Store is the part of the store the service uses.
type Store interface {
	store.InstallStore
	GetResult(ctx context.Context, taskID, agentID string) (store.Result, error)
	PutResults(ctx context.Context, rs []store.Result) error
}

// Options configure New.
type Options struct {
	Hub   *hub.Hub // required
	Store Store    // required
	// Offer registers a one-shot GET of a repository package
	// (execsvc.Service.Offer).
	Offer func(open func() (io.ReadCloser, int64, error)) (uri, token string, withdraw func())
	// Packages is the repository; nil: uri is refused.
	Packages Packages
	// Grace is how long past an install's timeout its outcome is waited
	// for before the result is lost. Default 2 min.
	Grace      time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service runs installs.
type Service struct {
	o   Options
	log *slog.Logger

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	closed bool
	runs   map[runKey]*Run
	asking map[runKey]time.Time // install_status_req sent, not answered unknown

	dropped *prometheus.CounterVec // agent messages not stored, by reason
	started prometheus.Counter
	asked   *prometheus.CounterVec // install_status_req, by result
}

type runKey struct{ agent, task string }

// Reasons of dropped agent messages.
const (
	dropMalformed = "malformed"
	dropUnknown   = "unknown_task"
)

// New returns a Service and registers its message handlers on the hub.
func New(o Options) (*Service, error) {
	if o.Hub == nil || o.Store == nil {
		return nil, errors.New("installsvc: Hub and Store are required")
	}
	if o.Grace <= 0 {
		o.Grace = 2 * time.Minute
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, log: log, runs: map[runKey]*Run{}, asking: map[runKey]time.Time{}}
	s.ctx, s.stop = context.WithCancel(context.Background())
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	r := stat.New(reg, "agentserver")
	s.dropped = r.CounterVec("install_messages_dropped_total", "Install messages from agents not stored, by reason (malformed, unknown_task).", "reason")
	s.started = r.Counter("installs_started_total", "Installs sent to agents.")
	s.asked = r.CounterVec("install_status_asked_total", "install_status_req about installs not finished when their agent reconnected: sent, send_failed, and unknown (the agent had no record; the host failed).", "result")
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("installsvc: metrics: %w", err)
	}
	for _, reason := range []string{dropMalformed, dropUnknown} {
		s.dropped.WithLabelValues(reason)
	}
	for _, a := range []string{askSent, askUnsent, askUnknown} {
		s.asked.WithLabelValues(a)
	}
	for _, t := range []protocol.Type{protocol.TypeInstallAction, protocol.TypeInstallDone} {
		o.Hub.HandleJournalType(t, func(sess *hub.Session, m *protocol.Msg) error { return s.onMessage(sess, m, true) })
		o.Hub.Handle(t, s.onAnswer)
	}
	return s, nil
}

// Close stops the deadline watchers and waits for them. Installs go on
// on their hosts; their outcome is stored when their agents report it.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
}

// Capable checks that an online agent can install: it announced
// install.v1. ErrNoCapability says what to do otherwise.
func (s *Service) Capable(agentID string) error {
	sess, ok := s.o.Hub.Session(agentID)
	if !ok {
		return fmt.Errorf("agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	if !sess.HasCap(protocol.CapInstall) {
		return fmt.Errorf("%w: agent %s (%s %s) does not announce %s; upgrade its exec-agent",
			ErrNoCapability, agentID, sess.Come().Name, sess.Come().Version, protocol.CapInstall)
	}
	return nil
}

// Start sends the install to the agent under task taskID (whose result
// row for the agent exists) and returns its Run once sent.
func (s *Service) Start(ctx context.Context, agentID, taskID string, spec Spec) (*Run, error) {
	if err := spec.Check(); err != nil {
		return nil, err
	}
	if err := s.Capable(agentID); err != nil {
		return nil, err
	}
	sess, ok := s.o.Hub.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	msg := &protocol.Msg{Type: protocol.TypeInstallRun, TID: taskID, Payload: &protocol.InstallRun{
		URL: spec.URL, URI: spec.URI, SHA256: spec.SHA256, Name: spec.Name, Kind: spec.Kind, Dir: spec.Dir,
		Timeout: int(spec.Duration() / time.Second), Auth: spec.Auth, User: spec.User, Pass: spec.Pass, Deps: spec.Deps,
	}}
	withdraw := func() {}
	if spec.URI != "" {
		run := msg.InstallRun()
		var err error
		var sum string
		if run.Transfer, run.Token, withdraw, sum, err = s.offer(ctx, spec); err != nil {
			return nil, err
		}
		if run.SHA256 == "" {
			run.SHA256 = sum // the caller's, when given, is what the agent checks
		}
	}
	r := &Run{svc: s, agent: agentID, task: taskID, sess: sess, timeout: spec.Duration(),
		changed: make(chan struct{}), done: make(chan struct{})}
	r.res = store.Result{TaskID: taskID, AgentID: agentID, State: store.ResultRunning, StartedAt: time.Now().UTC()}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		withdraw()
		return nil, ErrClosed
	}
	s.runs[runKey{agentID, taskID}] = r
	s.mu.Unlock()
	if err := s.o.Store.PutResults(ctx, []store.Result{r.res}); err != nil {
		s.forget(r)
		withdraw()
		return nil, fmt.Errorf("install: store the start: %w", err)
	}
	if err := sess.Send(ctx, msg); err != nil {
		withdraw()
		res := store.Result{TaskID: taskID, AgentID: agentID, State: store.ResultFailed, ExitCode: 1,
			StartedAt: r.res.StartedAt, EndedAt: time.Now().UTC(), Msg: "not started: " + err.Error()}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if perr := s.o.Store.PutResults(sctx, []store.Result{res}); perr != nil {
			s.log.Warn("install: store a failed start", "agent", agentID, "task", taskID, "err", perr)
		}
		cancel()
		r.end(res)
		s.forget(r)
		return r, err
	}
	s.started.Inc()
	s.log.Info("install: sent", "agent", agentID, "task", taskID, "uri", spec.URI, "url", spec.URL, "dir", spec.Dir,
		"auth", spec.Auth, "user", spec.User, "timeout", spec.Duration())
	s.wg.Go(func() { r.watch(withdraw) })
	return r, nil
}

// CheckPackage reports whether the repository holds name: nil, or an
// error saying why not (ErrNoRepository, ErrPackageNotFound).
func (s *Service) CheckPackage(ctx context.Context, name string) error {
	if s.o.Packages == nil || s.o.Offer == nil {
		return fault.Invalidf(ErrNoRepository, "this server has no package repository").InParam("uri")
	}
	body, _, err := s.o.Packages.Open(ctx, name)
	if errors.Is(err, ErrPackageNotFound) {
		return fault.New(fault.NotFound, ErrPackageNotFound, "package %q", clip(name))
	}
	if err != nil {
		return fmt.Errorf("package %q: %w", clip(name), err)
	}
	return body.Close()
}

// offer checks the repository package and registers its transfer.
func (s *Service) offer(ctx context.Context, spec Spec) (uri, token string, withdraw func(), sum string, err error) {
	if s.o.Packages == nil || s.o.Offer == nil {
		return "", "", nil, "", fault.Invalidf(ErrNoRepository, "this server has no package repository").InParam("uri")
	}
	body, pkg, err := s.o.Packages.Open(ctx, spec.URI)
	if errors.Is(err, ErrPackageNotFound) {
		return "", "", nil, "", fault.New(fault.NotFound, ErrPackageNotFound, "package %q", clip(spec.URI))
	}
	if err != nil {
		return "", "", nil, "", fmt.Errorf("package %q: %w", clip(spec.URI), err)
	}
	body.Close()
	name := spec.URI
	uri, token, withdraw = s.o.Offer(func() (io.ReadCloser, int64, error) {
		// Opened when the agent asks: the package streams from the
		// repository to the agent.
		rc, p, err := s.o.Packages.Open(s.ctx, name)
		if err != nil {
			return nil, 0, err
		}
		return rc, p.Size, nil
	})
	return uri, token, withdraw, pkg.SHA256, nil
}

func (s *Service) forget(r *Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs[runKey{r.agent, r.task}] == r {
		delete(s.runs, runKey{r.agent, r.task})
	}
}

func (s *Service) lookup(agent, task string) *Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[runKey{agent, task}]
}

// onMessage stores an install_action or install_done. A nil error means
// it is stored (or not ours: counted and dropped), so it may be acked.
// A journaled install_done is the agent's report and always sets the
// host's result; one that is not journaled (the answer to
// install_status_req) sets it only while it is not final, so that asking
// never undoes what a report stored.
func (s *Service) onMessage(sess *hub.Session, m *protocol.Msg, journaled bool) error {
	agent := sess.ID()
	var acts []protocol.InstallAction
	var st *protocol.InstallStatus
	switch {
	case m.InstallAction() != nil:
		acts = []protocol.InstallAction{*m.InstallAction()}
	case m.InstallDone() != nil:
		st = m.InstallDone()
		acts = st.Actions
	}
	if m.TID == "" || acts == nil && st == nil || st != nil && st.Unknown {
		s.dropped.WithLabelValues(dropMalformed).Inc()
		s.log.Warn("install: agent message dropped", "agent", agent, "type", m.Type, "tid", m.TID, "reason", dropMalformed)
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	r := s.lookup(agent, m.TID)
	cur, err := s.o.Store.GetResult(ctx, m.TID, agent)
	if errors.Is(err, store.ErrNotFound) {
		s.dropped.WithLabelValues(dropUnknown).Inc()
		s.log.Warn("install: agent message dropped", "agent", agent, "type", m.Type, "tid", m.TID, "reason", dropUnknown)
		return nil
	}
	if err != nil {
		return err
	}
	rows := make([]store.InstallAction, 0, len(acts))
	valid := make([]protocol.InstallAction, 0, len(acts))
	for _, a := range acts {
		if a.N < 0 || a.N >= store.MaxInstallActions || a.Action == "" || len(a.Action) > 16 {
			s.dropped.WithLabelValues(dropMalformed).Inc()
			s.log.Warn("install: malformed action dropped", "agent", agent, "tid", m.TID, "n", a.N, "action", clip(a.Action))
			continue
		}
		rows = append(rows, store.InstallAction{TaskID: m.TID, AgentID: agent, N: a.N, Action: a.Action, Name: a.Name, Time: a.Time, OK: a.OK, Msg: a.Msg})
		valid = append(valid, a)
	}
	if err := s.o.Store.PutInstallActions(ctx, rows); err != nil {
		return err
	}
	if r != nil {
		r.add(valid) // only what is stored: the stream is a prefix of RenderLog's
	}
	if st == nil || !st.Done {
		return nil
	}
	if !journaled && cur.State.Final() {
		return nil // already reported
	}
	res := outcome(cur, acts, st.Restarted)
	if err := s.o.Store.PutResults(ctx, []store.Result{res}); err != nil {
		return err
	}
	s.log.Info("install: ended", "agent", agent, "task", m.TID, "state", res.State, "msg", res.Msg, "restarted", st.Restarted)
	if r != nil {
		r.end(res)
		s.forget(r)
	}
	return nil
}

// outcome is the host's result from its log: the done action's ok and msg.
func outcome(cur store.Result, acts []protocol.InstallAction, restarted bool) store.Result {
	cur.State, cur.ExitCode, cur.Msg = store.ResultFailed, 1, "the agent reported no done action"
	cur.EndedAt = time.Now().UTC()
	for i := len(acts) - 1; i >= 0; i-- {
		if a := acts[i]; a.Action == protocol.InstallActDone {
			cur.Msg = a.Msg
			if a.OK {
				cur.State, cur.ExitCode = store.ResultOK, 0
			}
			if a.Time > 0 {
				cur.EndedAt = time.Unix(a.Time, 0).UTC()
			}
			break
		}
	}
	if restarted && cur.State != store.ResultOK && cur.Msg != "" {
		cur.Msg = "agent restarted: " + cur.Msg
	}
	return cur
}

// Line is one action of an install's output: the action as JSON
// (protocol.InstallAction, n included) and a newline.
func Line(a protocol.InstallAction) []byte {
	b, _ := json.Marshal(a)
	return append(b, '\n')
}

// RenderLog is a host's install output as the server keeps it: its stored
// actions (in position order, as the store lists them), a Line each. It is
// byte for byte what a Run streams (Run.ReadOutput), so that a client can
// read on from the offset it reached in the event stream.
func RenderLog(as []store.InstallAction) []byte {
	var out []byte
	for _, a := range as {
		out = append(out, Line(protocol.InstallAction{N: a.N, Action: a.Action, Name: a.Name, Time: a.Time, OK: a.OK, Msg: a.Msg})...)
	}
	return out
}

// Run is one host's install, from its start until its outcome. It
// implements tasks.Handle: its output is the action log as JSON lines, in
// position order (RenderLog): an action that arrives before one of a lower
// position waits for it (or for the end, when the gap is shown as it is).
type Run struct {
	svc   *Service
	agent string
	task  string
	// sess is the connection install_run was sent on: an agent that
	// reconnects since is asked what became of it (Reconnected).
	sess    *hub.Session
	timeout time.Duration

	mu      sync.Mutex
	next    int                            // the position the log goes on with
	early   map[int]protocol.InstallAction // arrived before next: waiting for it
	lines   []byte
	changed chan struct{}
	done    chan struct{}
	ended   bool
	res     store.Result
}

// TaskID is the task the install belongs to (its tid on the agent).
func (r *Run) TaskID() string { return r.task }

// Done is closed once the outcome is stored (or the wait for it gave up).
func (r *Run) Done() <-chan struct{} { return r.done }

// Changed is closed at the next action or at the end.
func (r *Run) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Result is the host's result so far.
func (r *Run) Result() store.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res
}

// ReadOutput reads the action log (one JSON object per line, in arrival
// order) from off.
func (r *Run) ReadOutput(_ context.Context, off int64, limit int) ([]byte, int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off < 0 || off > int64(len(r.lines)) {
		off = int64(len(r.lines))
	}
	end := min(int64(len(r.lines)), off+int64(limit))
	return append([]byte(nil), r.lines[off:end]...), end, nil
}

// errNoKill: installs are not interrupted (a half-run installer leaves a
// host worse off than a finished one).
var errNoKill = errors.New("an install cannot be stopped once sent; it runs to its end or its timeout")

// Kill refuses: see errNoKill.
func (r *Run) Kill(context.Context) error { return errNoKill }

// Unkillable tells the task runner not to kill a cancelled install: it
// waits for its end instead.
func (r *Run) Unkillable() bool { return true }

// Wait waits for the outcome.
func (r *Run) Wait(ctx context.Context) (store.Result, error) {
	select {
	case <-r.done:
		return r.Result(), nil
	case <-ctx.Done():
		return r.Result(), ctx.Err()
	}
}

// add appends the actions not seen yet to the log, in position order.
func (r *Run) add(acts []protocol.InstallAction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	if r.early == nil {
		r.early = map[int]protocol.InstallAction{}
	}
	for _, a := range acts {
		if _, dup := r.early[a.N]; a.N >= r.next && !dup {
			r.early[a.N] = a
		}
	}
	n := len(r.lines)
	for {
		a, ok := r.early[r.next]
		if !ok {
			break
		}
		delete(r.early, r.next)
		r.lines = append(r.lines, Line(a)...)
		r.next++
	}
	if len(r.lines) > n {
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

func (r *Run) end(res store.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended = true
	// Actions after a gap that never filled: shown now, in order (the
	// stored log has them in the same order).
	ns := slices.Sorted(maps.Keys(r.early))
	for _, n := range ns {
		r.lines = append(r.lines, Line(r.early[n])...)
	}
	r.early = nil
	r.res = res
	close(r.changed)
	r.changed = make(chan struct{})
	close(r.done)
}

// watch gives up on the outcome after the timeout plus the grace: the
// result is lost (a later report replaces it).
func (r *Run) watch(withdraw func()) {
	s := r.svc
	t := time.NewTimer(r.timeout + s.o.Grace)
	defer t.Stop()
	defer withdraw()
	select {
	case <-r.done:
		return
	case <-s.ctx.Done():
		return // shutting down: the outcome is stored when it comes
	case <-t.C:
	}
	res := r.Result()
	res.State, res.Msg = store.ResultLost, fmt.Sprintf("no outcome from the agent within the install's timeout (%s) plus %s", r.timeout, s.o.Grace)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.o.Store.PutResults(ctx, []store.Result{res}); err != nil {
		s.log.Warn("install: store a lost result", "agent", r.agent, "task", r.task, "err", err)
	}
	s.log.Warn("install: no outcome in time", "agent", r.agent, "task", r.task)
	r.end(res)
	s.forget(r)
}
