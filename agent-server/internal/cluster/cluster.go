// Package cluster makes agent-server a member of a cluster of servers that
// share one MySQL/MariaDB database and one NATS system (docs/cluster.md).
//
// A Member holds a row of the store's cluster_members table under a lease:
// it joins at start (taking its member id with a new epoch), renews the
// lease every third of its length with its current load, removes the rows
// of members whose lease ended longer ago than the grace, and deletes its
// own row when it stops. A member that stops renewing (killed, cut from the
// database) is listed as expired once its lease ends, so the others can
// tell it is gone without trusting it to say so. It also keeps the NATS
// connection the members will talk over, and reports what is unreachable
// (Ready, for /readyz).
//
// Lease times are taken from the members' clocks (Options.Now), which must
// agree to well under a lease.
//
// A Member is safe for concurrent use: Run renews from one goroutine while
// the API reads Members and Ready.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/stat"
	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/store"
)

// Options configure New.
type Options struct {
	Name      string // cluster.name
	MemberID  string // cluster.member
	Advertise string // http(s)://host:port
	Version   string
	Store     store.ClusterStore
	NATS      NATS
	// Lease is how long the member's row stays valid unrenewed; RenewEvery
	// how often Run renews it (default Lease/3); Grace how long an expired
	// member stays listed.
	Lease, RenewEvery, Grace time.Duration
	// Load is the member's agent sessions now (the hub's count).
	Load func() int
	// Rejoined, when set, runs after the member joined again because its
	// row was gone (its lease lapsed past the grace, for instance during a
	// long store outage): the other members have released the sessions
	// its row covered, and it takes back those it still holds. An error
	// runs it again after the next renewal.
	Rejoined func(ctx context.Context) error
	// Now is the clock of leases; time.Now when nil.
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *Metrics
}

// NATS says how to reach NATS: the cluster.nats_* keys.
type NATS struct {
	URLs                    string
	Creds, TokenFile, TLSCA string
}

// Metrics are the cluster's series; the server registers them whether or
// not it is in a cluster, so dashboards find them.
type Metrics struct {
	members         *prometheus.GaugeVec
	sessions        *prometheus.GaugeVec
	renewFailures   prometheus.Counter
	natsConnected   prometheus.Gauge
	leaseLostClosed prometheus.Counter
	drainClosed     prometheus.Counter
	redirects       *prometheus.CounterVec
}

// NewMetrics registers the cluster's series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	r := stat.New(reg, "agentserver")
	m := &Metrics{
		members:  r.GaugeVec("cluster_members", "Members of this server's cluster as it last listed them, by state (live: lease running; expired: lease ended, not yet removed).", "state"),
		sessions: r.GaugeVec("cluster_member_sessions", "Agent sessions of each member of this server's cluster at its last renewal, as this server last listed them.", "member"),
		renewFailures: r.Counter("cluster_lease_renew_failures_total",
			"Renewals of this member's lease that failed (store unreachable, or the member id was taken over)."),
		natsConnected: r.Gauge("cluster_nats_connected", "1 while the cluster's NATS connection is up."),
		leaseLostClosed: r.Counter("cluster_lease_lost_sessions_closed_total",
			"Agent sessions this member closed because its lease had ended while another member's was live (they reconnect to a member that can hold them)."),
		drainClosed: r.Counter("cluster_drain_sessions_closed_total",
			"Agent sessions this member closed while draining (they reconnect, and are redirected, to the other members)."),
		redirects: r.CounterVec("cluster_redirects_total",
			"Agent handshakes this member answered with a redirect to another member, by why: balance (over its share of the fleet by more than 10 %), drain (it is draining).", "why"),
	}
	for _, why := range []string{RedirectBalance, RedirectDrain} {
		m.redirects.WithLabelValues(why)
	}
	return m, r.Err()
}

// Member states in Status.
const (
	StateLive    = "live"
	StateExpired = "expired"
)

// Status is a member as listed: its row and what the lease says now.
type Status struct {
	store.ClusterMember
	State    string // StateLive or StateExpired
	Self     bool   // this process
	Draining bool   // it takes no new sessions (as this member knows: its own state, the others' announcements)
}

// Member is this server's membership. Create it with New, Join, then Run.
type Member struct {
	o        Options
	log      *slog.Logger
	instance string
	nc       *nats.Conn
	owned    owners // Owner's cache
	tasks    owners // TaskMember's cache

	gauges sync.Mutex // serialises the updates of the members gauges

	mu        sync.Mutex
	epoch     int64
	heldUntil time.Time            // end of the lease last written
	lost      error                // set when another instance took the member id
	reclaim   bool                 // the row was found gone: run Rejoined after the next good renewal
	others    map[string]time.Time // other members' lease ends, as last listed or announced
	// Balancing and drain (balance.go, drain.go).
	draining       bool              // this member takes no new sessions
	drainingOthers map[string]string // member → instance announced draining
	listed         []Status          // the last listing
	redirected     map[string]int    // sessions sent to each member since the last listing
}

// New checks o and opens the NATS connection, without waiting for it: the
// client keeps trying, and Ready says so meanwhile.
func New(o Options) (*Member, error) {
	if o.Name == "" || o.MemberID == "" || o.Store == nil || o.Load == nil || o.Metrics == nil {
		return nil, errors.New("cluster: name, member id, store, load and metrics are required")
	}
	if o.Lease <= 0 || o.Grace < o.Lease {
		return nil, fmt.Errorf("cluster: lease %v and grace %v: want 0 < lease <= grace", o.Lease, o.Grace)
	}
	if o.RenewEvery <= 0 {
		o.RenewEvery = o.Lease / 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Member{o: o, log: o.Logger, instance: utils.RandomHex(8), others: map[string]time.Time{},
		drainingOthers: map[string]string{}, redirected: map[string]int{}}
	nc, err := m.connect()
	if err != nil {
		return nil, err
	}
	m.nc = nc
	if _, err := nc.Subscribe(m.leaseSubject(), m.onLease); err != nil { // ends with nc
		nc.Close()
		return nil, fmt.Errorf("cluster: subscribe to lease announcements: %w", err)
	}
	return m, nil
}

func (m *Member) connect() (*nats.Conn, error) {
	g := m.o.Metrics.natsConnected
	opts := []nats.Option{
		nats.Name("agent-server " + m.o.Name + "/" + m.o.MemberID),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(time.Second, 2*time.Second),
		nats.Timeout(5 * time.Second),
		nats.ConnectHandler(func(c *nats.Conn) {
			g.Set(1)
			m.log.Info("cluster: connected to NATS", "server", c.ConnectedUrlRedacted())
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			g.Set(1)
			m.log.Info("cluster: reconnected to NATS", "server", c.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			g.Set(0)
			if err != nil { // nil: closed by us
				m.log.Warn("cluster: disconnected from NATS", "err", err)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { g.Set(0) }),
	}
	n := m.o.NATS
	switch {
	case n.Creds != "":
		if _, err := os.Stat(n.Creds); err != nil {
			return nil, fmt.Errorf("cluster.nats_creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(n.Creds))
	case n.TokenFile != "":
		b, err := os.ReadFile(n.TokenFile)
		if err != nil || strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("cluster.nats_token_file %s: unreadable or empty (%v)", n.TokenFile, err)
		}
		opts = append(opts, nats.Token(strings.TrimSpace(string(b))))
	}
	if n.TLSCA != "" {
		opts = append(opts, nats.RootCAs(n.TLSCA))
	}
	nc, err := nats.Connect(n.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats: %w", err)
	}
	return nc, nil
}

// Instance is this process's instance id (new at every start).
func (m *Member) Instance() string { return m.instance }

// Name is the cluster's name, ID this member's id.
func (m *Member) Name() string { return m.o.Name }

// ID is this member's id in the cluster.
func (m *Member) ID() string { return m.o.MemberID }

// Epoch is the epoch this instance holds its member id under (0 before Join).
func (m *Member) Epoch() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.epoch
}

func (m *Member) row(now time.Time) store.ClusterMember {
	return store.ClusterMember{Cluster: m.o.Name, ID: m.o.MemberID, Instance: m.instance, Advertise: m.o.Advertise,
		Version: m.o.Version, RenewedAt: now, LeaseUntil: now.Add(m.o.Lease), Sessions: m.o.Load()}
}

// TaskOwner is this member as the owner of the tasks it creates or takes
// over: its id, instance and the end of the lease it last wrote (zero
// before Join). The lease renewals move the tasks' leases with its own.
func (m *Member) TaskOwner() store.TaskOwner {
	m.mu.Lock()
	defer m.mu.Unlock()
	return store.TaskOwner{Member: m.o.MemberID, Instance: m.instance, Until: m.heldUntil}
}

// RenewEvery is how often Run renews the lease.
func (m *Member) RenewEvery() time.Duration { return m.o.RenewEvery }

// Join takes the member id. It fails when a live server holds it (another
// server configured with the same cluster.member, or the same id).
func (m *Member) Join(ctx context.Context) error {
	now := m.o.Now()
	r := m.row(now)
	r.StartedAt = now
	got, err := m.o.Store.JoinCluster(ctx, r, now)
	if err != nil {
		return fmt.Errorf("cluster %s: join as %s: %w", m.o.Name, m.o.MemberID, err)
	}
	m.mu.Lock()
	m.epoch, m.heldUntil, m.lost = got.Epoch, r.LeaseUntil, nil
	m.mu.Unlock()
	m.log.Info("cluster: joined", "cluster", m.o.Name, "member", m.o.MemberID, "epoch", got.Epoch, "advertise", m.o.Advertise)
	return nil
}

// Renew moves the lease on. When the row is gone (removed after a long
// outage) it joins again; when another instance holds the member id now,
// the membership is lost for good (Ready says so) and not fought over.
func (m *Member) Renew(ctx context.Context) error {
	m.mu.Lock()
	lost := m.lost
	m.mu.Unlock()
	if lost != nil {
		m.o.Metrics.renewFailures.Inc() // every round, so that alerts keep firing
		return lost
	}
	now := m.o.Now()
	r := m.row(now)
	err := m.o.Store.RenewClusterMember(ctx, r)
	if errors.Is(err, store.ErrNotFound) {
		m.mu.Lock()
		m.reclaim = true // until Rejoined ran: a Join cut short may have taken the row anyway
		m.mu.Unlock()
		err = m.rejoin(ctx)
	}
	if err != nil {
		m.o.Metrics.renewFailures.Inc()
		return fmt.Errorf("cluster %s: renew the lease of %s: %w", m.o.Name, m.o.MemberID, err)
	}
	// The tasks this instance owns share its lease (docs/cluster.md, task
	// ownership): moved in one UPDATE. A failure leaves them to lapse, and
	// another member may take them over; the renewal itself stands.
	// A draining member handed its tasks over (HandOverTasks): their lease
	// stays ended.
	if !m.Draining() {
		if _, err := m.o.Store.RenewTaskLeases(ctx, m.o.MemberID, m.instance, r.LeaseUntil); err != nil {
			m.o.Metrics.renewFailures.Inc()
			m.log.Warn("cluster: renew the leases of this member's tasks", "err", err)
		}
	}
	m.mu.Lock()
	m.heldUntil = r.LeaseUntil
	reclaim := m.reclaim
	epoch := m.epoch
	m.reclaim = false
	m.mu.Unlock()
	m.announce(r.LeaseUntil, epoch)
	if reclaim && m.o.Rejoined != nil {
		if err := m.o.Rejoined(ctx); err != nil {
			m.log.Warn("cluster: take back the sessions after joining again: retried at the next renewal", "err", err)
			m.mu.Lock()
			m.reclaim = true
			m.mu.Unlock()
		}
	}
	return nil
}

func (m *Member) rejoin(ctx context.Context) error {
	list, err := m.o.Store.ClusterMembers(ctx, m.o.Name)
	if err != nil {
		return err
	}
	for _, r := range list {
		if r.ID == m.o.MemberID && r.Instance != m.instance {
			err := fmt.Errorf("member id taken over by the server at %s (epoch %d)", r.Advertise, r.Epoch)
			m.mu.Lock()
			m.lost = err
			m.mu.Unlock()
			return err
		}
	}
	m.log.Warn("cluster: this member's row was removed (lease lapsed past the grace): joining again", "member", m.o.MemberID)
	return m.Join(ctx)
}

// Sweep removes the members whose lease ended more than the grace ago.
func (m *Member) Sweep(ctx context.Context) (int64, error) {
	n, err := m.o.Store.ForgetClusterMembers(ctx, m.o.Name, m.o.Now().Add(-m.o.Grace))
	if err != nil {
		return 0, fmt.Errorf("cluster %s: remove expired members: %w", m.o.Name, err)
	}
	if n > 0 {
		m.log.Info("cluster: removed expired members", "count", n, "grace", m.o.Grace)
	}
	return n, nil
}

// Members lists the cluster's members by id, each live or expired by the
// clock now, and updates the members gauges.
func (m *Member) Members(ctx context.Context) ([]Status, error) {
	rows, err := m.o.Store.ClusterMembers(ctx, m.o.Name)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: list members: %w", m.o.Name, err)
	}
	now := m.o.Now()
	out := make([]Status, len(rows))
	live := 0
	m.mu.Lock()
	for _, r := range rows {
		if r.ID != m.o.MemberID && r.LeaseUntil.After(m.others[r.ID]) {
			m.others[r.ID] = r.LeaseUntil
		}
	}
	for i, r := range rows {
		out[i] = Status{ClusterMember: r, State: StateExpired, Self: r.ID == m.o.MemberID && r.Instance == m.instance}
		if !r.LeaseUntil.Before(now) {
			out[i].State = StateLive
			live++
		}
		if out[i].Self {
			out[i].Draining = m.draining
		} else {
			out[i].Draining = m.drainingOthers[r.ID] == r.Instance
		}
	}
	m.listed = out
	clear(m.redirected)
	m.mu.Unlock()
	g := m.o.Metrics
	m.gauges.Lock() // a listing's series all together, not mixed with another's
	defer m.gauges.Unlock()
	g.sessions.Reset() // members removed since leave no series behind
	for _, r := range rows {
		g.sessions.WithLabelValues(r.ID).Set(float64(r.Sessions))
	}
	g.members.WithLabelValues(StateLive).Set(float64(live))
	g.members.WithLabelValues(StateExpired).Set(float64(len(rows) - live))
	return out, nil
}

// NATSState is the NATS connection's state: connected, reconnecting,
// connecting, closed, …
func (m *Member) NATSState() string { return strings.ToLower(m.nc.Status().String()) }

// Ready reports what keeps this member from serving as one: the member id
// lost to another instance, a lease that ran out (the store did not take
// the renewals) or NATS unreachable.
func (m *Member) Ready() error {
	m.mu.Lock()
	lost, held := m.lost, m.heldUntil
	m.mu.Unlock()
	switch {
	case lost != nil:
		return fmt.Errorf("cluster membership lost: %w", lost)
	case m.o.Now().After(held):
		return fmt.Errorf("cluster lease expired at %s: renewals failed", held.Format(time.RFC3339))
	case !m.nc.IsConnected():
		return fmt.Errorf("NATS unreachable (%s)", m.NATSState())
	}
	return nil
}

// Run renews the lease, removes expired members and refreshes the gauge
// every RenewEvery until ctx ends; failures are logged and counted, and
// the next round tries again.
func (m *Member) Run(ctx context.Context) {
	t := time.NewTicker(m.o.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.Tick(ctx)
	}
}

// Tick is one round of Run.
func (m *Member) Tick(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, m.o.RenewEvery)
	defer cancel()
	if err := m.Renew(rctx); err != nil {
		m.log.Error("cluster: lease not renewed", "err", err)
		return
	}
	if _, err := m.Sweep(rctx); err != nil {
		m.log.Warn("cluster: sweep", "err", err)
	}
	if n, err := m.o.Store.ForgetAgentSessions(rctx, m.o.Name); err != nil {
		m.log.Warn("cluster: sweep agent sessions", "err", err)
	} else if n > 0 {
		m.log.Info("cluster: removed the sessions of gone members", "count", n)
	}
	if _, err := m.Members(rctx); err != nil {
		m.log.Warn("cluster: list members", "err", err)
	}
}

// Close leaves the cluster (deletes this member's row, so the others see
// it gone at once rather than when its lease ends) and closes NATS.
func (m *Member) Close(ctx context.Context) error {
	defer m.nc.Close()
	m.mu.Lock()
	joined := m.epoch > 0 && m.lost == nil
	m.mu.Unlock()
	if !joined {
		return nil
	}
	if err := m.o.Store.LeaveCluster(ctx, m.o.Name, m.o.MemberID, m.instance); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("cluster %s: leave: %w", m.o.Name, err)
	}
	m.log.Info("cluster: left", "cluster", m.o.Name, "member", m.o.MemberID)
	return nil
}
