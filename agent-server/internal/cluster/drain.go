package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Drain (docs/cluster.md, "Balancing and drain"): a member asked to drain
// (agent-server drain, POST /api/cluster/drain, or SIGTERM with
// cluster.drain_period) takes no new sessions — handshakes are redirected
// to the others — hands its tasks over at once and closes its sessions
// spread over the drain period, so that they reconnect, through the
// shared address and the redirect, to the other members.

// Why a handshake was redirected (agentserver_cluster_redirects_total).
const (
	RedirectBalance = "balance"
	RedirectDrain   = "drain"
)

// SetDraining marks this member draining: it is announced to the others
// at once and with every renewal, and listed so.
func (m *Member) SetDraining() {
	m.mu.Lock()
	m.draining = true
	until, epoch := m.heldUntil, m.epoch
	m.mu.Unlock()
	if !until.IsZero() {
		m.announce(until, epoch)
	}
}

// Draining says whether this member is draining.
func (m *Member) Draining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining
}

// HandOverTasks ends the lease of the tasks this instance owns now, so
// that the next round of another member takes them over; a draining
// member renews them no more. It returns how many it handed over.
func (m *Member) HandOverTasks(ctx context.Context) (int64, error) {
	n, err := m.o.Store.RenewTaskLeases(ctx, m.o.MemberID, m.instance, m.o.Now().Add(-time.Millisecond))
	if err != nil {
		return 0, fmt.Errorf("cluster %s: hand over the tasks of %s: %w", m.o.Name, m.o.MemberID, err)
	}
	return n, nil
}

// Loads is the cluster's members as the balancer sees them at now: the
// last listing, each member live by the latest lease end known (listing or
// announcement), draining as announced, with the sessions redirected to
// it since that listing added to its count.
func (m *Member) Loads(now time.Time) []Load {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Load, 0, len(m.listed))
	for _, s := range m.listed {
		until := s.LeaseUntil
		if u := m.others[s.ID]; !s.Self && u.After(until) {
			until = u
		}
		draining := s.Draining
		if !s.Self {
			draining = m.drainingOthers[s.ID] == s.Instance
		}
		out = append(out, Load{ID: s.ID, Advertise: s.Advertise, Sessions: s.Sessions + m.redirected[s.ID],
			Live: !now.After(until), Draining: draining})
	}
	return out
}

// Redirected counts a handshake sent to member to by why: it is added to
// to's load until the next listing, so that a burst of handshakes is not
// all sent to the one member that looked least loaded.
func (m *Member) Redirected(to, why string) {
	m.mu.Lock()
	m.redirected[to]++
	m.mu.Unlock()
	m.o.Metrics.redirects.WithLabelValues(why).Inc()
}

// DrainOptions configure NewDrain.
type DrainOptions struct {
	// Sessions lists the agents with a session here; Close closes one
	// (false when it had ended already).
	Sessions func() []string
	Close    func(agent string) bool
	// OtherLive says whether another member's lease is live at now
	// (Member.LeaseState): with none, closing would only send the agents
	// back here, so the sessions are kept until one is.
	OtherLive func(now time.Time) bool
	Now       func() time.Time // time.Now when nil
	Rand      func() float64   // [0,1); math/rand/v2 when nil
	Logger    *slog.Logger
	// Metrics counts the closes (agentserver_cluster_drain_sessions_closed_total).
	Metrics *Metrics
}

// Drain closes a draining member's sessions: Start plans them over the
// period, Step (run often: every 250 ms) closes those whose time came.
// Safe for concurrent use.
type Drain struct {
	o DrainOptions

	mu      sync.Mutex
	started time.Time
	period  time.Duration
	plan    []planned            // the closes not yet made, in time order
	closed  map[string]time.Time // when each agent was closed (not closed again within the period)
	kept    bool                 // logged that no other member is live
	total   int
}

// NewDrain makes the drain; nothing happens before Start.
func NewDrain(o DrainOptions) *Drain {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Drain{o: o, closed: map[string]time.Time{}}
}

// MinDrainPeriod is the shortest period the closes are spread over.
const MinDrainPeriod = time.Second

// Start begins the drain, the closes spread over period (at least
// MinDrainPeriod). It returns false when the drain had begun already
// (its period stays).
func (d *Drain) Start(period time.Duration) bool {
	period = max(period, MinDrainPeriod)
	now := d.o.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started.IsZero() {
		return false
	}
	d.started, d.period = now, period
	d.plan = spread(d.o.Sessions(), now, period, d.o.Rand)
	d.o.Logger.Warn("cluster: draining: agent handshakes redirected to the other members, closing the agent sessions",
		"sessions", len(d.plan), "over", period)
	return true
}

// Started says whether the drain began, and when.
func (d *Drain) Started() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started, !d.started.IsZero()
}

// Step closes the sessions whose time came and returns how many it closed.
// Sessions that came in after the plan was made (a handshake in flight, or
// one kept while no other member was live) are planned again over a new
// period once the plan is done.
func (d *Drain) Step() int {
	now := d.o.Now()
	d.mu.Lock()
	if d.started.IsZero() {
		d.mu.Unlock()
		return 0
	}
	if !d.o.OtherLive(now) {
		if !d.kept {
			d.o.Logger.Warn("cluster: draining, but no other member is live: the agent sessions are kept until one is",
				"left", len(d.plan))
			d.kept = true
		}
		d.plan = nil
		d.mu.Unlock()
		return 0
	}
	d.kept = false
	if len(d.plan) == 0 {
		var left []string
		for _, a := range d.o.Sessions() {
			if at, ok := d.closed[a]; !ok || now.Sub(at) >= d.period {
				left = append(left, a)
			}
		}
		d.plan = spread(left, now, d.period, d.o.Rand)
	}
	due, rest := takeDue(d.plan, now)
	d.plan = rest
	d.mu.Unlock()
	n := closeEach(due, d.o.Close, d.o.Metrics.drainClosed)
	d.mu.Lock()
	for _, a := range due {
		d.closed[a] = now
	}
	d.total += n
	d.mu.Unlock()
	return n
}
