// Package logging is agent-server's side of log collection: the projects
// (the seed's /logging/config, remove, start, stop, task_info) stored in the
// server's store and pushed to the log-agents they target, the batches of
// log lines the agents ship (log.v1, protocol types 150–153) stored exactly
// once in the embedded segment store (segments.go), the query and the live
// tail of what is stored, and the /metrics series of all of it.
//
// # Delivery
//
// A log_batch is handled on its session's ingest worker (ingest.go), fed
// in order by the session's reader through a bounded queue: decoded,
// deduplicated by (host, source id, offset) against the marks of the
// host's segments, appended, and only then acknowledged with a log_ack.
// The agent re-sends what was not acknowledged, so a batch is stored once
// whatever crashes in between (see segments.go). One worker per session
// keeps an agent's batches in order; a full queue makes a slow disk slow
// the agent down instead of filling memory, and the reader stays free for
// the agent's other messages until then.
//
// # Config push
//
// Every change of a project sends every connected log-agent its whole
// project list (log_config); a log-agent that connects gets it right after
// the handshake (OnConnect). The agent starts, stops, restarts and removes
// its collectors to match.
//
// The projects are kept in memory (loaded at New, written through to the
// store): OnConnect must not wait for the database.
package logging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// Caps are the capabilities this package implements (hub ExtraCaps).
var Caps = []string{protocol.CapLog}

// Sentinel errors of the project operations.
var (
	ErrNotFound = errors.New("no such project")
	// ErrNoNodes: none of the project's target nodes is a known log-agent
	// (the seed's "no available collection node").
	ErrNoNodes      = errors.New("no available collection node: none of the targets is a log-agent the server knows")
	ErrRunning      = errors.New("project already started")
	ErrNotRunning   = errors.New("project not started")
	errUnknownBatch = errors.New("unknown project")
)

// Options configure a Service.
type Options struct {
	Store store.Store // must implement store.LoggingStore
	Hub   *hub.Hub
	// Segments configures the embedded log store (Dir required).
	Segments StoreOptions
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// SyncEvery: fsync of the segments written (default 1 s).
	SyncEvery time.Duration
	// PruneEvery: retention run (default 1 min).
	PruneEvery time.Duration
	// TailBuffer: lines queued per live-tail subscriber (default 4096).
	TailBuffer int
	// Forward, when set, forwards the stored lines to NATS JetStream.
	Forward *ForwardOptions
	// IngestQueue: log batches queued per session for its ingest worker
	// (default DefaultIngestQueue); IngestWait: how long the session's
	// reader waits for room before it disconnects the agent (default
	// DefaultIngestWait). See ingest.go.
	IngestQueue int
	IngestWait  time.Duration
	// BeforeAppend, for tests, runs on the ingest worker before each
	// append to the store (a slow disk).
	BeforeAppend func(project, host string)
	Now          func() time.Time
}

// Service is the log-collection service. Safe for concurrent use.
type Service struct {
	o    Options
	st   store.Store
	ls   store.LoggingStore
	hub  *hub.Hub
	log  *slog.Logger
	segs *Store
	m    *metrics
	tail *tailHub
	fwd  *forwarder // nil: no forwarding

	// rm orders a project's removal against the appends of its batches:
	// an append that passed the project check finishes before the files
	// are deleted, and none starts after.
	rm sync.RWMutex

	ingMu      sync.Mutex
	ing        map[*hub.Session]*ingester
	ingStopped bool
	ingWG      sync.WaitGroup

	mu       sync.Mutex
	projects map[string]*project // by name
	nodes    map[string]map[string]*nodeStatus
	dirty    map[[2]string]bool // (project, agent) statuses to write
}

type project struct {
	row store.LogProject
	cfg *Config
}

type nodeStatus struct {
	raw     json.RawMessage
	updated time.Time
}

// New loads the projects and opens the segment store.
func New(ctx context.Context, o Options) (*Service, error) {
	ls, ok := o.Store.(store.LoggingStore)
	if !ok {
		return nil, fmt.Errorf("logging: store %T keeps no log projects", o.Store)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = time.Second
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = time.Minute
	}
	if o.TailBuffer <= 0 {
		o.TailBuffer = 4096
	}
	if o.IngestQueue <= 0 {
		o.IngestQueue = DefaultIngestQueue
	}
	if o.IngestWait <= 0 {
		o.IngestWait = DefaultIngestWait
	}
	o.Segments.Log = o.Logger
	var fwd *forwarder // set below; retention runs only after New
	if o.Forward != nil {
		o.Segments.BeforeDelete = func(project, host string, seq uint64, path string) { fwd.beforeDelete(project, host, seq, path) }
	}
	if o.Segments.Now == nil {
		o.Segments.Now = o.Now
	}
	segs, err := OpenStore(o.Segments)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, st: o.Store, ls: ls, hub: o.Hub, log: o.Logger, segs: segs, m: m, tail: newTailHub(m),
		projects: map[string]*project{}, nodes: map[string]map[string]*nodeStatus{}, dirty: map[[2]string]bool{},
		ing: map[*hub.Session]*ingester{}}
	rows, err := ls.ListLogProjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("logging: %w", err)
	}
	for _, r := range rows {
		var c Config
		if err := json.Unmarshal(r.Spec, &c); err != nil {
			s.log.Error("stored log project unreadable, skipped", "project", r.Name, "err", err)
			continue
		}
		s.projects[r.Name] = &project{row: r, cfg: &c}
		ns, err := ls.ListLogNodes(ctx, r.Name)
		if err != nil {
			return nil, fmt.Errorf("logging: %w", err)
		}
		for _, n := range ns {
			s.nodeMap(r.Name)[n.AgentID] = &nodeStatus{raw: n.Status, updated: n.UpdatedAt}
		}
	}
	if o.Forward != nil {
		fm, err := newFwdMetrics(o.Registry)
		if err != nil {
			return nil, err
		}
		if fwd, err = newForwarder(*o.Forward, segs, s.projectGen, fm, o.Logger.With("part", "forward")); err != nil {
			segs.Close()
			return nil, fmt.Errorf("logging: forwarding: %w", err)
		}
		s.fwd = fwd
	}
	return s, nil
}

// projectGen returns a configured project's generation: the time it was
// created, which changes when it is removed and configured again.
func (s *Service) projectGen(name string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[name]
	if p == nil {
		return 0, false
	}
	return p.row.CreatedAt.Unix(), true
}

func (s *Service) nodeMap(p string) map[string]*nodeStatus {
	m := s.nodes[p]
	if m == nil {
		m = map[string]*nodeStatus{}
		s.nodes[p] = m
	}
	return m
}

// Register installs the handlers of the agents' messages on h.
func (s *Service) Register(h *hub.Hub) {
	h.Handle(protocol.TypeLogBatch, s.onBatch)
	h.Handle(protocol.TypeLogStatus, s.onStatus)
}

// Segments returns the embedded log store.
func (s *Service) Segments() *Store { return s.segs }

// Run syncs the segments, applies retention and writes the nodes' status
// until ctx is done; then it stops the ingest workers and closes the
// segment store.
func (s *Service) Run(ctx context.Context) {
	sync := time.NewTicker(s.o.SyncEvery)
	prune := time.NewTicker(s.o.PruneEvery)
	defer sync.Stop()
	defer prune.Stop()
	s.fwd.start(ctx)
	for {
		select {
		case <-ctx.Done():
			s.stopIngest() // no append after it, so nothing more to forward
			s.fwd.stop()
			s.flushNodes(context.Background())
			if err := s.segs.Close(); err != nil {
				s.log.Error("close log store", "err", err)
			}
			s.tail.closeAll()
			return
		case <-sync.C:
			if err := s.segs.Sync(); err != nil {
				s.log.Error("sync log store", "err", err)
			}
			s.flushNodes(ctx)
		case <-prune.C:
			s.prune()
		}
	}
}

func (s *Service) prune() {
	n, b, err := s.segs.Prune()
	if n > 0 {
		s.m.pruned.Add(float64(n))
		s.m.prunedBytes.Add(float64(b))
		s.log.Info("log segments deleted by retention", "segments", n, "bytes", b)
	}
	if err != nil {
		s.log.Error("log retention", "err", err)
	}
}

func (s *Service) flushNodes(ctx context.Context) {
	s.mu.Lock()
	var ns []store.LogNode
	for k := range s.dirty {
		if st := s.nodes[k[0]][k[1]]; st != nil {
			ns = append(ns, store.LogNode{Project: k[0], AgentID: k[1], Status: st.raw, UpdatedAt: st.updated})
		}
	}
	s.dirty = map[[2]string]bool{}
	s.mu.Unlock()
	if len(ns) == 0 {
		return
	}
	if err := s.ls.PutLogNodes(ctx, ns); err != nil {
		s.log.Error("store log nodes' status", "nodes", len(ns), "err", err)
	}
}

// ---- the agents' messages

// refuse answers a batch that was not stored; the agent keeps it and sends
// it again, so nothing is lost here, but it is counted and logged.
func (s *Service) refuse(sess *hub.Session, tid string, b *protocol.LogBatch, reason string, err error) {
	s.m.refused.WithLabelValues(reason).Inc()
	s.log.Warn("log batch refused", "agent", sess.ID(), "project", b.Project, "seq", b.Seq, "reason", reason, "err", err)
	s.ack(sess, tid, &protocol.LogAck{Project: b.Project, Seq: b.Seq, Err: err.Error()})
}

func (s *Service) ack(sess *hub.Session, tid string, a *protocol.LogAck) {
	if tid == "" {
		return
	}
	m := &protocol.Msg{Type: protocol.TypeLogAck, TID: tid}
	if err := m.SetExtra(protocol.KeyLogAck, a); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sess.Send(ctx, m); err != nil {
		s.log.Debug("log ack not sent", "agent", sess.ID(), "err", err)
	}
}

// agentStatus is what the service reads of a log-agent's project status.
type agentStatus struct {
	Name         string `json:"name"`
	DroppedLines int64  `json:"dropped_lines"`
	LagBytes     int64  `json:"lag_bytes"`
}

func (s *Service) onStatus(sess *hub.Session, m *protocol.Msg) {
	var st protocol.LogStatus
	if err := m.GetExtra(protocol.KeyLogStatus, &st); err != nil {
		s.m.refused.WithLabelValues("malformed_status").Inc()
		return
	}
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, raw := range st.Projects {
		var a agentStatus
		if len(raw) > 1<<20 || json.Unmarshal(raw, &a) != nil || s.projects[a.Name] == nil {
			continue
		}
		s.nodeMap(a.Name)[sess.ID()] = &nodeStatus{raw: slices.Clone(raw), updated: now}
		s.dirty[[2]string{a.Name, sess.ID()}] = true
		s.m.lag.WithLabelValues(a.Name, sess.ID()).Set(float64(a.LagBytes))
		s.m.agentDropped.WithLabelValues(a.Name, sess.ID()).Set(float64(a.DroppedLines))
	}
}

// ---- config push

// listFor returns the log_config of one agent. s.mu is held.
func (s *Service) listFor(id, agentType string) *protocol.LogConfig {
	cfg := &protocol.LogConfig{Projects: []protocol.LogProject{}}
	for _, p := range s.projects {
		if p.cfg.Targets(id, agentType) {
			cfg.Projects = append(cfg.Projects, protocol.LogProject{Name: p.row.Name, Running: p.row.Running, Spec: p.cfg.AgentSpec()})
		}
	}
	slices.SortFunc(cfg.Projects, func(a, b protocol.LogProject) int { return strings.Compare(a.Name, b.Name) })
	return cfg
}

// OnConnect sends a log-agent its projects; the message goes out right
// after the handshake.
func (s *Service) OnConnect(sess *hub.Session) {
	if !hasLogCap(sess) {
		return
	}
	s.mu.Lock()
	cfg := s.listFor(sess.ID(), sess.Come().Name)
	s.mu.Unlock()
	s.send(sess, cfg)
}

func (s *Service) send(sess *hub.Session, cfg *protocol.LogConfig) {
	m := &protocol.Msg{Type: protocol.TypeLogConfig}
	if err := m.SetExtra(protocol.KeyLogConfig, cfg); err != nil {
		s.log.Error("encode log config", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sess.Send(ctx, m); err != nil {
		s.log.Warn("log config not sent", "agent", sess.ID(), "err", err)
		return
	}
	s.m.pushes.Inc()
	s.log.Debug("log config sent", "agent", sess.ID(), "projects", len(cfg.Projects))
}

// pushAll sends every connected log-agent its list.
func (s *Service) pushAll() {
	for _, info := range s.hub.Sessions() {
		if info.Type != AgentType {
			continue
		}
		sess, ok := s.hub.Session(info.ID)
		if !ok || !hasLogCap(sess) {
			continue
		}
		s.mu.Lock()
		cfg := s.listFor(info.ID, info.Type)
		s.mu.Unlock()
		s.send(sess, cfg)
	}
}

// ---- the operations of the routes

// knownLogAgent reports whether id is a log-agent, connected or stored.
func (s *Service) knownLogAgent(ctx context.Context, id string) bool {
	if sess, ok := s.hub.Session(id); ok {
		return sess.Come().Name == AgentType
	}
	a, err := s.st.GetAgent(ctx, id)
	return err == nil && a.Type == AgentType
}

// Configure creates or replaces a project and pushes it.
func (s *Service) Configure(ctx context.Context, c *Config) (store.LogProject, error) {
	if err := c.Check(); err != nil {
		return store.LogProject{}, err
	}
	ok := false
	if len(c.IDs) == 0 { // k8s: every log-agent
		for _, in := range s.hub.Sessions() {
			ok = ok || in.Type == AgentType
		}
		if !ok {
			_, n, err := s.st.ListAgents(ctx, store.AgentFilter{Type: AgentType, Paging: store.Paging{Size: 1}})
			ok = err == nil && n > 0
		}
	}
	for _, id := range c.IDs {
		if s.knownLogAgent(ctx, id) {
			ok = true
			break
		}
	}
	if !ok {
		return store.LogProject{}, ErrNoNodes
	}
	spec, err := json.Marshal(c)
	if err != nil {
		return store.LogProject{}, err
	}
	row, err := s.ls.PutLogProject(ctx, store.LogProject{Name: c.PID, Type: c.Type, Spec: spec})
	if err != nil {
		return store.LogProject{}, err
	}
	s.mu.Lock()
	s.projects[c.PID] = &project{row: row, cfg: c}
	s.mu.Unlock()
	s.pushAll()
	return row, nil
}

// Remove deletes a project, its stored lines and its nodes' state.
func (s *Service) Remove(ctx context.Context, pid string) error {
	if err := s.ls.DeleteLogProject(ctx, pid); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotFound
		}
		return err
	}
	// No append of this project runs while it leaves the map and its
	// folder moves away; none starts after.
	s.rm.Lock()
	s.mu.Lock()
	delete(s.projects, pid)
	delete(s.nodes, pid)
	for k := range s.dirty {
		if k[0] == pid {
			delete(s.dirty, k)
		}
	}
	s.mu.Unlock()
	s.fwd.forget(pid)
	trash, err := s.segs.DropProject(pid)
	s.rm.Unlock()
	s.m.forget(pid)
	s.pushAll()
	if err == nil && trash != "" {
		err = os.RemoveAll(trash)
	}
	if err != nil {
		s.log.Error("stored lines of a removed project not deleted", "project", pid, "err", err)
	}
	return nil
}

// SetRunning starts or stops a project.
func (s *Service) SetRunning(ctx context.Context, pid string, running bool) error {
	row, err := s.ls.SetLogProjectRunning(ctx, pid, running)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, store.ErrConflict) && running:
		return ErrRunning
	case errors.Is(err, store.ErrConflict):
		return ErrNotRunning
	case err != nil:
		return err
	}
	s.mu.Lock()
	if p := s.projects[pid]; p != nil {
		p.row = row
	}
	s.mu.Unlock()
	s.pushAll()
	return nil
}

// TaskInfo is the payload of /api/logging/task_info (the seed's shape,
// with a few fields of ours after it).
type TaskInfo struct {
	Type     string     `json:"type"`
	Exclude  string     `json:"exclude"`
	Batch    int        `json:"batch"`
	Buffer   int        `json:"buffer"`
	Interval int        `json:"interval"`
	Created  int64      `json:"created"` // Unix seconds
	Nodes    []NodeInfo `json:"nodes"`

	PID     string `json:"pid"`
	Running bool   `json:"running"`
	Version int64  `json:"version"`
	Config  Config `json:"config"`
	// Forward: the project's forwarding to NATS JetStream, when on.
	Forward *ForwardStatus `json:"forward,omitempty"`
}

// NodeInfo is one node of TaskInfo.
type NodeInfo struct {
	ID string `json:"id"`
	// Status: "running" or "stoped" (sic, the seed's spelling). Until the
	// node reports on the project as it is now (Pending), an online node
	// shows the state the server asked for: start and stop show at once.
	// An offline node is "stoped".
	Status string           `json:"status"`
	Info   []map[string]any `json:"info"`

	// Pending: the node has not reported since the project's last change
	// (config, start, stop); Status is the state asked for, not confirmed.
	Pending bool   `json:"pending"`
	Online  bool   `json:"online"`
	Error   string `json:"error,omitempty"`
	Updated int64  `json:"updated,omitempty"` // Unix seconds of the last status; 0: none yet
	// Counters of the node's last status (lines, bytes, shipped_lines,
	// dropped_lines, lag_bytes, …), as the agent reports them.
	Stats map[string]any `json:"stats,omitempty"`
}

// TaskInfo returns a project with its nodes.
func (s *Service) TaskInfo(ctx context.Context, pid string) (*TaskInfo, error) {
	s.mu.Lock()
	p := s.projects[pid]
	var nodes map[string]*nodeStatus
	if p != nil {
		nodes = make(map[string]*nodeStatus, len(s.nodes[pid]))
		for k, v := range s.nodes[pid] {
			nodes[k] = v
		}
	}
	s.mu.Unlock()
	if p == nil {
		return nil, ErrNotFound
	}
	c := *p.cfg
	c.Token = "" // never shown
	ti := &TaskInfo{Type: c.Type, Exclude: c.Exclude, Batch: c.Batch, Buffer: c.Buffer, Interval: c.Interval,
		Created: p.row.CreatedAt.Unix(), PID: pid, Running: p.row.Running, Version: p.row.Version, Config: c, Nodes: []NodeInfo{}}
	ids := slices.Clone(c.IDs)
	for id := range nodes {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		n := NodeInfo{ID: id, Status: "stoped", Info: []map[string]any{}, Pending: true}
		sess, online := s.hub.Session(id)
		n.Online = online && sess.Come().Name == AgentType
		running := p.row.Running // asked for; what a node shows until it reports
		if st := nodes[id]; st != nil {
			var full map[string]any
			_ = json.Unmarshal(st.raw, &full)
			// A status from before the project's last change (a stop, a
			// start) says nothing about the project as it is now.
			if !st.updated.Before(p.row.UpdatedAt) {
				n.Pending = false
				r, _ := full["running"].(bool)
				running = r && p.row.Running
			}
			if infos, ok := full["info"].([]any); ok {
				for _, x := range infos {
					if m, ok := x.(map[string]any); ok {
						n.Info = append(n.Info, m)
					}
				}
			}
			n.Error, _ = full["last_error"].(string)
			delete(full, "info")
			delete(full, "last_error")
			delete(full, "name")
			delete(full, "type")
			delete(full, "running")
			n.Stats = full
			n.Updated = st.updated.Unix()
		} else if !n.Online {
			n.Error = "not connected, no status reported yet"
		}
		if running && n.Online {
			n.Status = "running"
		}
		ti.Nodes = append(ti.Nodes, n)
	}
	ti.Forward = s.fwd.status(pid)
	return ti, nil
}

// List returns every project with its nodes (TaskInfo of each), by name.
func (s *Service) List(ctx context.Context) ([]*TaskInfo, error) {
	s.mu.Lock()
	names := make([]string, 0, len(s.projects))
	for name := range s.projects {
		names = append(names, name)
	}
	s.mu.Unlock()
	slices.Sort(names)
	out := make([]*TaskInfo, 0, len(names))
	for _, name := range names {
		ti, err := s.TaskInfo(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ti)
	}
	return out, nil
}

// Exists reports whether a project is configured.
func (s *Service) Exists(pid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.projects[pid] != nil
}

// Query runs q on the stored lines.
func (s *Service) Query(ctx context.Context, q Query) ([]Line, *Cursor, error) {
	return s.segs.Query(ctx, q)
}

// Subscribe starts a live tail of the lines stored from now on.
func (s *Service) Subscribe(f TailFilter) *Subscription { return s.tail.subscribe(f, s.o.TailBuffer) }

// hasLogCap reports whether the session's agent announced log.v1 (the hub
// announces it for this package through ExtraCaps; its own capability set
// only tracks the extensions it implements itself).
func hasLogCap(sess *hub.Session) bool { return protocol.HasCap(sess.Come().Caps, protocol.CapLog) }
