package hostmetrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/jkframe/stat"
)

// ErrNoData: nothing is cached (or stored) for that agent and category
// (HTTP 404 "not found: metrics").
var ErrNoData = errors.New("no metrics stored")

// Store is the part of store.Store the service uses.
type Store interface {
	PutMetrics(ctx context.Context, ms []store.Metric) error
	GetMetric(ctx context.Context, agentID, category string) (store.Metric, error)
	AddUsage(ctx context.Context, ms []store.Metric) error
	PruneUsage(ctx context.Context, olderThan time.Time) (int64, error)
	UsageHistory(ctx context.Context, agentID string, since time.Time) ([]store.Metric, error)
}

// Hub is the part of *hub.Hub the service uses to reach agents.
type Hub interface {
	Call(ctx context.Context, agentID string, msg *protocol.Msg) (*protocol.Msg, error)
	Send(ctx context.Context, agentID string, msg *protocol.Msg) error
	Sessions() []hub.SessionInfo
}

// Options configure New. Zero values select the documented defaults.
type Options struct {
	Store    Store                 // required
	Hub      Hub                   // required for the requests to agents
	Logger   *slog.Logger          // default: discard
	Registry prometheus.Registerer // the service's own counters; default: not exported
	Now      func() time.Time      // default time.Now

	// FlushInterval is how often pushed reports are written to the store:
	// one transaction for the latest report of every (agent, category) and
	// one for the usage history, whatever the number of agents. Default 5 s.
	FlushInterval time.Duration
	// Retention is how long usage samples are kept in the history; < 0
	// keeps no history. Default 24 h.
	Retention time.Duration
	// HistoryInterval is the least time between two history samples of one
	// agent (a sample every 5 s is rarely worth keeping); 0 selects the
	// default of 1 min, < 0 keeps every pushed sample.
	HistoryInterval time.Duration
	// PruneInterval is how often samples older than Retention are deleted.
	// Default Retention / 24, between 1 min and 1 h.
	PruneInterval time.Duration
	// MaxPendingHistory bounds the history samples waiting for a flush;
	// beyond it the oldest are dropped (counted). Default 100,000.
	MaxPendingHistory int

	// RecentWindow is how much usage history each host keeps in memory
	// (History; the console's charts); < 0 keeps none. Default 1 h.
	RecentWindow time.Duration
	// RecentStep is the least time between two samples of the in-memory
	// history (a whole number of seconds, at least 1 s); it sets its memory
	// cost: RecentWindow / RecentStep samples of 28 bytes per host.
	// Default 15 s.
	RecentStep time.Duration
	// MaxRecentHosts bounds the hosts with an in-memory history; the
	// pushes of further hosts are not kept there (counted). Default 100,000.
	MaxRecentHosts int

	// StaleIntervals: a host leaves /metrics/hosts when it has not pushed
	// usage for this many usage intervals. Default 3.
	StaleIntervals int
	// DefaultInterval is the usage interval assumed until the agent reports
	// it (type 37) or two pushes show it. Default 1 min.
	DefaultInterval time.Duration
	// MaxInterfaces, MaxMounts and MaxSensors cap the per-host series of
	// /metrics/hosts (the first ones by name are kept; the rest are counted
	// in agentserver_host_capped_items). Defaults 32, 32, 64.
	MaxInterfaces, MaxMounts, MaxSensors int

	// FleetConcurrency bounds the agents contacted at once by SetFleet.
	// Default 32.
	FleetConcurrency int
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 5 * time.Second
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.HistoryInterval == 0 {
		o.HistoryInterval = time.Minute
	}
	if o.PruneInterval <= 0 {
		o.PruneInterval = min(max(o.Retention/24, time.Minute), time.Hour)
	}
	if o.MaxPendingHistory <= 0 {
		o.MaxPendingHistory = 100000
	}
	if o.RecentWindow == 0 {
		o.RecentWindow = time.Hour
	}
	if o.RecentStep <= 0 {
		o.RecentStep = 15 * time.Second
	}
	o.RecentStep = max(time.Second, o.RecentStep.Truncate(time.Second))
	if o.MaxRecentHosts <= 0 {
		o.MaxRecentHosts = 100000
	}
	if o.StaleIntervals <= 0 {
		o.StaleIntervals = 3
	}
	if o.DefaultInterval <= 0 {
		o.DefaultInterval = time.Minute
	}
	if o.MaxInterfaces <= 0 {
		o.MaxInterfaces = 32
	}
	if o.MaxMounts <= 0 {
		o.MaxMounts = 32
	}
	if o.MaxSensors <= 0 {
		o.MaxSensors = 64
	}
	if o.FleetConcurrency <= 0 {
		o.FleetConcurrency = 32
	}
}

// key names one (agent, category) report.
type key struct{ agent, category string }

// report is a pushed report waiting for the flush: the wire value
// (*protocol.HMStatic, *protocol.HMUsage, []protocol.HMProcess,
// []protocol.HMConnection or []protocol.HMTemperature) and when it came.
type report struct {
	at time.Time
	v  any
}

type histSample struct {
	agent string
	at    time.Time
	u     *protocol.HMUsage
}

// JobStatus is what the server knows of an agent's collection jobs without
// asking it: the last type-37 report and the last change requested through
// the API.
type JobStatus struct {
	// Reported is the last hm_agent_status (37), nil before the first.
	Reported *AgentStatus `json:"reported"`
	// Requested is the last job list sent with type 36, nil when none.
	Requested *JobRequest `json:"requested"`
}

// AgentStatus is a type-37 report.
type AgentStatus struct {
	Time     time.Time  `json:"time"` // when the server received it
	Jobs     []AgentJob `json:"jobs"`
	Warnings uint64     `json:"warns"`
}

// AgentJob is one job in AgentStatus.
type AgentJob struct {
	Name      string `json:"name"`
	Interval  uint64 `json:"interval"`   // seconds
	BytesSent uint64 `json:"bytes_sent"` // by this job since the agent started
	Count     uint64 `json:"count"`      // reports sent
}

// JobRequest is a job change sent to an agent (type 36, no reply in v1).
// Confirmed is set by the first type-37 report received after Time whose
// job names are exactly Jobs.
type JobRequest struct {
	Time      time.Time `json:"time"`
	Jobs      []string  `json:"jobs"`
	Confirmed bool      `json:"confirmed"`
}

// Service ingests the metrics-agents' pushes, keeps the latest report of
// each category per agent (in memory until the next flush, then in the
// store), a bounded usage history, and the in-memory host table behind
// /metrics/hosts; it also sends the metrics requests to agents.
//
// Push handlers (HandleStatic, HandleDynamic, HandleAgentStatus) run on the
// hub's reader goroutines: they only update maps under a mutex. Run owns
// the flush and prune loop. All methods are safe for concurrent use.
type Service struct {
	o      Options
	log    *slog.Logger
	m      *svcMetrics
	hosts  *hosts
	recent *recent // nil: no in-memory history

	mu       sync.Mutex
	pending  map[key]report
	history  []histSample
	lastHist map[string]time.Time // agent → time of its last kept sample
	jobs     map[string]*JobStatus

	flushMu sync.Mutex // one flush at a time
}

// New returns a Service; register its push handlers on the hub
// (Register), serve its Gatherer on /metrics/hosts, and Run it.
func New(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("hostmetrics: Options.Store is required")
	}
	o.setDefaults()
	m, err := newSvcMetrics(o.Registry)
	if err != nil {
		return nil, fmt.Errorf("hostmetrics metrics: %w", err)
	}
	s := &Service{
		o: o, log: o.Logger, m: m,
		pending:  map[key]report{},
		lastHist: map[string]time.Time{},
		jobs:     map[string]*JobStatus{},
	}
	s.hosts = newHosts(&s.o)
	s.recent = newRecent(o.RecentWindow, o.RecentStep, o.MaxRecentHosts, m.recentUntracked.Inc)
	r := stat.New(o.Registry, "agentserver")
	r.GaugeFunc("hostmetrics_hosts", "Hosts in the /metrics/hosts table (stale ones leave at the next scrape).",
		func() float64 { return float64(s.hosts.count()) })
	r.GaugeFunc("hostmetrics_recent_hosts", "Hosts with an in-memory usage history (hostmetrics.recent_window).",
		func() float64 { return float64(s.recent.count()) })
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("hostmetrics metrics: %w", err)
	}
	return s, nil
}

// Register installs the push handlers of types 31, 33 and 37 on h.
func (s *Service) Register(h *hub.Hub) {
	h.Handle(protocol.TypeHMStaticRep, func(sess *hub.Session, m *protocol.Msg) { s.HandleStatic(sess.ID(), m) })
	h.Handle(protocol.TypeHMDynamicRep, func(sess *hub.Session, m *protocol.Msg) { s.HandleDynamic(sess.ID(), m) })
	h.Handle(protocol.TypeHMAgentStatus, func(sess *hub.Session, m *protocol.Msg) { s.HandleAgentStatus(sess.ID(), m) })
}

// HandleStatic ingests a pushed hm_static_rep (31). A message with a tid is
// a late reply to a request that gave up waiting: it is ignored.
func (s *Service) HandleStatic(agentID string, m *protocol.Msg) {
	if m.TID != "" || m.HMStatic() == nil {
		return
	}
	now := s.o.Now()
	s.m.reports.WithLabelValues(store.CategoryStatic).Inc()
	s.mu.Lock()
	s.pending[key{agentID, store.CategoryStatic}] = report{now, m.HMStatic()}
	s.mu.Unlock()
	s.hosts.setStatic(agentID, m.HMStatic(), now)
}

// HandleDynamic ingests a pushed hm_dynamic_rep (33) carrying any
// combination of categories (v1 agents send one per message).
func (s *Service) HandleDynamic(agentID string, m *protocol.Msg) {
	d := m.HMDynamicRep()
	if m.TID != "" || d == nil {
		return
	}
	now := s.o.Now()
	s.mu.Lock()
	if d.Usage != nil {
		s.m.reports.WithLabelValues(store.CategoryUsage).Inc()
		s.pending[key{agentID, store.CategoryUsage}] = report{now, d.Usage}
		s.addHistoryLocked(agentID, now, d.Usage)
	}
	if d.Process != nil {
		s.m.reports.WithLabelValues(store.CategoryProcess).Inc()
		s.pending[key{agentID, store.CategoryProcess}] = report{now, d.Process}
	}
	if d.Connections != nil {
		s.m.reports.WithLabelValues(store.CategoryConns).Inc()
		s.pending[key{agentID, store.CategoryConns}] = report{now, d.Connections}
	}
	if d.Temperatures != nil {
		s.m.reports.WithLabelValues(store.CategoryTemps).Inc()
		s.pending[key{agentID, store.CategoryTemps}] = report{now, d.Temperatures}
	}
	s.mu.Unlock()
	if d.Usage != nil {
		s.recent.add(agentID, now, pointFromWire(d.Usage))
	}
	s.hosts.setDynamic(agentID, d, now)
}

func (s *Service) addHistoryLocked(agentID string, now time.Time, u *protocol.HMUsage) {
	if s.o.Retention < 0 {
		return
	}
	if last, ok := s.lastHist[agentID]; ok && s.o.HistoryInterval > 0 && now.Sub(last) < s.o.HistoryInterval {
		return
	}
	s.lastHist[agentID] = now
	if len(s.history) >= s.o.MaxPendingHistory {
		drop := len(s.history) - s.o.MaxPendingHistory + 1
		s.history = append(s.history[:0], s.history[drop:]...)
		s.m.dropped.Add(float64(drop))
	}
	s.history = append(s.history, histSample{agentID, now, u})
}

// HandleAgentStatus records a pushed hm_agent_status (37): the agent's jobs
// (for GET /api/metrics/{id}/status and to confirm a job change) and its
// usage interval (for staleness on /metrics/hosts).
func (s *Service) HandleAgentStatus(agentID string, m *protocol.Msg) {
	st := m.HMAgentStatus()
	if st == nil {
		return
	}
	now := s.o.Now()
	rep := &AgentStatus{Time: now, Warnings: st.Warnings, Jobs: make([]AgentJob, 0, len(st.Jobs))}
	var usageEvery time.Duration
	for _, j := range st.Jobs {
		rep.Jobs = append(rep.Jobs, AgentJob{Name: j.Name, Interval: j.Interval, BytesSent: j.BytesSent, Count: j.Count})
		if j.Name == store.CategoryUsage && j.Interval > 0 && j.Interval < 1<<32 {
			usageEvery = time.Duration(j.Interval) * time.Second
		}
	}
	s.mu.Lock()
	js := s.jobs[agentID]
	if js == nil {
		js = &JobStatus{}
		s.jobs[agentID] = js
	}
	js.Reported = rep
	if r := js.Requested; r != nil && !r.Confirmed && !now.Before(r.Time) && sameJobs(r.Jobs, rep.Jobs) {
		r.Confirmed = true
	}
	s.mu.Unlock()
	s.hosts.setInterval(agentID, usageEvery)
}

func sameJobs(want []string, have []AgentJob) bool {
	if len(want) != len(have) {
		return false
	}
	for _, j := range have {
		found := false
		for _, w := range want {
			if w == j.Name {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Jobs returns what is known of an agent's jobs without asking it.
func (s *Service) Jobs(agentID string) (JobStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	js, ok := s.jobs[agentID]
	if !ok {
		return JobStatus{}, false
	}
	out := JobStatus{}
	if js.Reported != nil {
		r := *js.Reported
		out.Reported = &r
	}
	if js.Requested != nil {
		r := *js.Requested
		out.Requested = &r
	}
	return out, true
}

// setRequested records a job change asked of the agent; it returns the
// request it replaced and the new one (for undoRequested).
func (s *Service) setRequested(agentID string, jobs []string, at time.Time) (prev, req *JobRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	js := s.jobs[agentID]
	if js == nil {
		js = &JobStatus{}
		s.jobs[agentID] = js
	}
	prev, req = js.Requested, &JobRequest{Time: at, Jobs: jobs}
	js.Requested = req
	return prev, req
}

// undoRequested puts back prev when req, a request that could not be sent,
// is still the latest.
func (s *Service) undoRequested(agentID string, prev, req *JobRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if js := s.jobs[agentID]; js != nil && js.Requested == req {
		js.Requested = prev
	}
}

// Forget drops an agent from /metrics/hosts (its connection ended). Its
// stored reports stay for ?cached=1.
func (s *Service) Forget(agentID string) {
	s.hosts.remove(agentID)
	s.mu.Lock()
	delete(s.lastHist, agentID)
	s.mu.Unlock()
}

// Run flushes pushed reports every FlushInterval and prunes the history
// every PruneInterval until ctx ends, then flushes once more (bounded by
// 10 s) and returns.
func (s *Service) Run(ctx context.Context) {
	flush := time.NewTicker(s.o.FlushInterval)
	defer flush.Stop()
	prune := time.NewTicker(s.o.PruneInterval)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.Flush(fctx); err != nil {
				s.log.Error("hostmetrics: final flush", "err", err)
			}
			cancel()
			return
		case <-flush.C:
			if err := s.Flush(ctx); err != nil {
				s.log.Warn("hostmetrics: flush", "err", err)
			}
			s.recent.sweep(s.o.Now())
		case <-prune.C:
			if _, err := s.Prune(ctx); err != nil {
				s.log.Warn("hostmetrics: prune usage history", "err", err)
			}
		}
	}
}

// Flush writes the pending reports: the latest of each (agent, category)
// in one store call, the history samples in another. Reports whose write
// failed are put back unless a newer one arrived meanwhile; history samples
// of a failed write are dropped (counted).
func (s *Service) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	pending, history := s.pending, s.history
	s.pending, s.history = make(map[key]report, len(pending)), nil
	s.mu.Unlock()
	if len(pending) == 0 && len(history) == 0 {
		return nil
	}
	start := time.Now()
	defer func() { s.m.flushSeconds.Observe(time.Since(start).Seconds()) }()

	var errs []error
	latest := make([]store.Metric, 0, len(pending))
	for k, r := range pending {
		data, err := encode(k.category, r.v)
		if err != nil {
			errs = append(errs, fmt.Errorf("encode %s of %s: %w", k.category, k.agent, err))
			continue
		}
		latest = append(latest, store.Metric{AgentID: k.agent, Category: k.category, Time: r.at, Data: data})
	}
	if err := s.o.Store.PutMetrics(ctx, latest); err != nil {
		s.m.flushErrors.Inc()
		errs = append(errs, fmt.Errorf("store %d reports: %w", len(latest), err))
		if !errors.Is(err, store.ErrInvalid) { // an invalid batch would fail again
			s.mu.Lock()
			for k, r := range pending {
				if cur, ok := s.pending[k]; !ok || cur.at.Before(r.at) {
					s.pending[k] = r
				}
			}
			s.mu.Unlock()
		}
	}
	if len(history) > 0 {
		hist := make([]store.Metric, 0, len(history))
		for _, h := range history {
			data, err := json.Marshal(FromUsage(h.u))
			if err != nil {
				continue
			}
			hist = append(hist, store.Metric{AgentID: h.agent, Category: store.CategoryUsage, Time: h.at, Data: data})
		}
		if err := s.o.Store.AddUsage(ctx, hist); err != nil {
			s.m.flushErrors.Inc()
			s.m.dropped.Add(float64(len(hist)))
			errs = append(errs, fmt.Errorf("store %d usage samples: %w", len(hist), err))
		}
	}
	return errors.Join(errs...)
}

// Prune deletes the history samples older than Retention (by the injected
// clock) and returns how many.
func (s *Service) Prune(ctx context.Context) (int64, error) {
	if s.o.Retention < 0 {
		return 0, nil
	}
	n, err := s.o.Store.PruneUsage(ctx, s.o.Now().Add(-s.o.Retention))
	if err != nil {
		return 0, fmt.Errorf("prune usage history: %w", err)
	}
	s.m.pruned.Add(float64(n))
	return n, nil
}

// encode is the stored (API-shaped) JSON of a pending report.
func encode(category string, v any) (json.RawMessage, error) {
	var api any
	switch w := v.(type) {
	case *protocol.HMStatic:
		api = FromStatic(w)
	case *protocol.HMUsage:
		api = FromUsage(w)
	case []protocol.HMProcess:
		api = FromProcesses(w)
	case []protocol.HMConnection:
		api = FromConnections(w)
	case []protocol.HMTemperature:
		api = FromTemperatures(w)
	default:
		return nil, fmt.Errorf("category %s: unexpected %T", category, v)
	}
	return json.Marshal(api)
}

// Cached decodes into dst (a pointer to the API type of category) the
// latest report of that category: the one waiting for the flush, else the
// stored one. It returns the time the server received it, or ErrNoData.
func (s *Service) Cached(ctx context.Context, agentID, category string, dst any) (time.Time, error) {
	s.mu.Lock()
	r, ok := s.pending[key{agentID, category}]
	s.mu.Unlock()
	if ok {
		data, err := encode(category, r.v)
		if err != nil {
			return time.Time{}, err
		}
		return r.at, json.Unmarshal(data, dst)
	}
	m, err := s.o.Store.GetMetric(ctx, agentID, category)
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, fmt.Errorf("%s metrics of agent %s: %w", category, agentID, ErrNoData)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("cached %s metrics of agent %s: %w", category, agentID, err)
	}
	if err := json.Unmarshal(m.Data, dst); err != nil {
		return time.Time{}, fmt.Errorf("stored %s metrics of agent %s: %w", category, agentID, err)
	}
	return m.Time, nil
}

// History returns a host's usage samples at or after since, oldest first:
// from the in-memory recent history when this server holds the host's, else
// from the stored usage history (one sample per HistoryInterval; the host
// pushes to another server of a cluster, or this server restarted). A host
// with neither gives an empty History, not an error.
func (s *Service) History(ctx context.Context, agentID string, since time.Time) (*History, error) {
	if ss, ok := s.recent.since(agentID, since); ok {
		h := newHistory("memory", s.o.RecentStep, len(ss))
		for _, x := range ss {
			h.append(x)
		}
		return h, nil
	}
	ms, err := s.o.Store.UsageHistory(ctx, agentID, since)
	if err != nil {
		return nil, fmt.Errorf("usage history of agent %s: %w", agentID, err)
	}
	h := newHistory("store", max(s.o.HistoryInterval, 0), len(ms))
	var ring hostRing
	ring.buf = make([]recentSample, 1)
	for _, m := range ms {
		var u Usage
		if err := json.Unmarshal(m.Data, &u); err != nil {
			s.m.badStored.Inc()
			continue
		}
		p := pointFromAPI(&u)
		t := uint32(max(0, min(m.Time.Unix(), math.MaxUint32)))
		ring.add(recentSample{t: t, cpu: hundredths(p.cpu), mem: hundredths(p.mem), disk: hundredths(p.disk), load1: hundredths(p.load1),
			rd: float32(p.rd), wr: float32(p.wr)}, p)
		h.append(ring.buf[0])
	}
	return h, nil
}

// Gatherer returns the series of /metrics/hosts (serve it with
// promhttp.HandlerFor).
func (s *Service) Gatherer() prometheus.Gatherer { return s.hosts }

// HostCount returns the hosts currently in the /metrics/hosts table.
func (s *Service) HostCount() int { return s.hosts.count() }

type svcMetrics struct {
	recentUntracked prometheus.Counter
	badStored       prometheus.Counter
	reports         *prometheus.CounterVec
	dropped         prometheus.Counter
	flushErrors     prometheus.Counter
	pruned          prometheus.Counter
	flushSeconds    prometheus.Histogram
}

func newSvcMetrics(reg prometheus.Registerer) (*svcMetrics, error) {
	r := stat.New(reg, "agentserver")
	m := &svcMetrics{
		reports:         r.CounterVec("hostmetrics_reports_total", "Pushed metrics reports received, by category.", "category"),
		dropped:         r.Counter("hostmetrics_history_dropped_total", "Usage history samples dropped (pending bound exceeded or store write failed)."),
		flushErrors:     r.Counter("hostmetrics_flush_errors_total", "Failed store writes of pushed metrics."),
		pruned:          r.Counter("hostmetrics_history_pruned_total", "Usage history samples deleted after the retention."),
		flushSeconds:    r.Histogram("hostmetrics_flush_seconds", "Time to write one batch of pushed metrics to the store.", prometheus.ExponentialBuckets(0.001, 4, 8)),
		recentUntracked: r.Counter("hostmetrics_recent_untracked_total", "Usage pushes not kept in the in-memory history: hostmetrics.max_recent_hosts hosts are tracked already."),
		badStored:       r.Counter("hostmetrics_history_unreadable_total", "Stored usage history samples that could not be decoded (left out of GET /api/metrics/{id}/history)."),
	}
	return m, r.Err()
}
