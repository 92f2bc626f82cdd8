package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/mysqlschema/mysqltest"

	"github.com/agentfleet/agent-server/internal/cluster"
	"github.com/agentfleet/agent-server/internal/natstest"
	"github.com/agentfleet/agent-server/internal/store"
)

// clock is the members' injected clock, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// mysqlStore opens the store on a fresh MariaDB database.
func mysqlStore(t *testing.T) store.ClusterStore {
	db := mysqltest.Open(t)
	var name string
	if err := db.QueryRow("SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	mc, err := mysql.ParseDSN(mysqltest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	mc.DBName = name
	st, err := store.Open(context.Background(), store.Config{Driver: store.DriverMySQL, DSN: mc.FormatDSN()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(store.ClusterStore)
}

// setup gives a test the store on a fresh MariaDB database, the NATS URL
// and a clock at a fixed time.
func setup(t *testing.T) (store.ClusterStore, string, *clock) {
	return mysqlStore(t), "nats://" + natstest.Addr(t), &clock{now: time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)}
}

const (
	lease = 15 * time.Second
	grace = time.Minute
)

// member is one member's Member with its metrics registry.
type member struct {
	*cluster.Member
	reg *prometheus.Registry
}

func newMember(t *testing.T, st store.ClusterStore, natsURL string, clk *clock, id, advertise string, load int) member {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := cluster.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := cluster.New(cluster.Options{Name: "test", MemberID: id, Advertise: advertise, Version: "1.0.0", Store: st,
		NATS: cluster.NATS{URLs: natsURL}, Lease: lease, Grace: grace, Load: func() int { return load }, Now: clk.Now, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close(context.Background()) })
	return member{mem, reg}
}

// gauge is the value of a gauge's series whose one label is value (-1 when
// there is none).
func (m member) gauge(t *testing.T, name, value string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			if s.GetLabel()[0].GetValue() == value {
				return s.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func (m member) members(t *testing.T, state string) float64 {
	return m.gauge(t, "agentserver_cluster_members", state)
}

func (m member) sessions(t *testing.T, id string) float64 {
	return m.gauge(t, "agentserver_cluster_member_sessions", id)
}

func (m member) renewFailures(t *testing.T) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "agentserver_cluster_lease_renew_failures_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// states lists "id:state" of each member as m sees it.
func states(t *testing.T, m member) string {
	t.Helper()
	list, err := m.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list {
		self := ""
		if s.Self {
			self = "*"
		}
		out = append(out, fmt.Sprintf("%s%s:%s:%d", s.ID, self, s.State, s.Sessions))
	}
	return strings.Join(out, " ")
}

// TestLeaseExpiry drives two members on MariaDB with an injected clock:
// one that stops renewing is listed as expired once its lease has ended,
// is not ready, and is removed after the grace; when it renews again it
// joins again.
func TestLeaseExpiry(t *testing.T) {
	ctx := context.Background()
	st, natsURL, clk := setup(t)
	a := newMember(t, st, natsURL, clk, "a", "http://10.0.0.1:13081", 5)
	b := newMember(t, st, natsURL, clk, "b", "http://10.0.0.2:13081", 7)
	for _, m := range []member{a, b} {
		if err := m.Join(ctx); err != nil {
			t.Fatal(err)
		}
		eventually.NoError(t, m.ID()+" ready", m.Ready)
	}
	if got := states(t, a); got != "a*:live:5 b:live:7" {
		t.Fatalf("a sees %q", got)
	}
	if a.members(t, "live") != 2 || a.members(t, "expired") != 0 || a.sessions(t, "a") != 5 || a.sessions(t, "b") != 7 {
		t.Errorf("gauges: live %v expired %v, sessions a %v b %v", a.members(t, "live"), a.members(t, "expired"), a.sessions(t, "a"), a.sessions(t, "b"))
	}

	// Within the lease nothing changes; b renews, a does not.
	clk.Add(lease - time.Second)
	if err := b.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if got := states(t, b); got != "a:live:5 b*:live:7" {
		t.Fatalf("within the lease b sees %q", got)
	}
	clk.Add(2 * time.Second) // a's lease ended a second ago
	if got := states(t, b); got != "a:expired:5 b*:live:7" {
		t.Fatalf("after a's lease b sees %q", got)
	}
	if b.members(t, "live") != 1 || b.members(t, "expired") != 1 {
		t.Errorf("gauge live %v expired %v", b.members(t, "live"), b.members(t, "expired"))
	}
	if err := a.Ready(); err == nil || !strings.Contains(err.Error(), "cluster lease expired") {
		t.Errorf("a.Ready = %v", err)
	}

	// Sweeping within the grace keeps a; after it, a is removed.
	if n, err := b.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep within the grace: %d %v", n, err)
	}
	if err := b.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(grace)
	if err := b.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the grace: %d %v", n, err)
	}
	if got := states(t, b); got != "b*:live:7" {
		t.Fatalf("after the sweep b sees %q", got)
	}
	if b.sessions(t, "a") != -1 || b.members(t, "expired") != 0 {
		t.Errorf("after the sweep: a's sessions series %v, expired %v", b.sessions(t, "a"), b.members(t, "expired"))
	}

	// a comes back: its row is gone, so its renewal joins again.
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if got := states(t, a); got != "a*:live:5 b:live:7" || a.Ready() != nil || a.Epoch() != 1 {
		t.Fatalf("a back: %q, ready %v, epoch %d", got, a.Ready(), a.Epoch())
	}
	if a.renewFailures(t) != 0 {
		t.Errorf("renew failures %v", a.renewFailures(t))
	}
}

// TestMemberIDTakenOver: a server that takes a member id over after its
// holder's lease ended wins it for good: the old holder's renewals fail,
// it says it lost the membership and does not take the id back.
func TestMemberIDTakenOver(t *testing.T) {
	ctx := context.Background()
	st, natsURL, clk := setup(t)
	old := newMember(t, st, natsURL, clk, "s1", "http://10.0.0.1:13081", 1)
	if err := old.Join(ctx); err != nil {
		t.Fatal(err)
	}
	next := newMember(t, st, natsURL, clk, "s1", "http://10.0.0.9:13081", 2)
	err := next.Join(ctx)
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "member id s1 is held by the server at http://10.0.0.1:13081") {
		t.Fatalf("join of a live id: %v", err)
	}
	clk.Add(lease + time.Second)
	if err := next.Join(ctx); err != nil || next.Epoch() != 2 {
		t.Fatalf("join after the lease: %v, epoch %d", err, next.Epoch())
	}
	for range 2 {
		if err := old.Renew(ctx); err == nil || !strings.Contains(err.Error(), "member id taken over by the server at http://10.0.0.9:13081 (epoch 2)") {
			t.Fatalf("old holder's renewal: %v", err)
		}
	}
	if err := old.Ready(); err == nil || !strings.Contains(err.Error(), "cluster membership lost") {
		t.Errorf("old.Ready = %v", err)
	}
	if old.renewFailures(t) != 2 {
		t.Errorf("renew failures %v", old.renewFailures(t))
	}
	// Its leaving does not remove the new holder's row.
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := states(t, next); got != "s1*:live:2" {
		t.Fatalf("after the old holder closed: %q", got)
	}
}
