package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/api"
	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/natstest"
	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/internal/testserver"
)

// A token limited by a label selector: it sees members without their load.
const (
	limitedName  = "limited"
	limitedToken = "limited-token-0123456789"
)

// clusterMember runs a server that is member id of cluster "e2e" on the
// MariaDB database dsn and the NATS at natsURL, with a 3 s lease (renewed
// every second), on a port known before it starts (it advertises it).
func clusterMember(t *testing.T, dsn, natsURL, id string) *testServer {
	t.Helper()
	return clusterMemberSpec(t, dsn, natsURL, id, serverSpec{})
}

// clusterMemberSpec is clusterMember with more of spec (its log, say).
func clusterMemberSpec(t *testing.T, dsn, natsURL, id string, spec serverSpec) *testServer {
	t.Helper()
	addr := freeAddr(t)
	spec.addr, spec.mysql = addr, dsn
	spec.mod = func(c *config.Config) {
		clusterConfig(c, natsURL, id, addr)
		c.API.Scoped = append(c.API.Scoped, config.ScopedToken{Name: limitedName, Secret: limitedToken,
			Scopes: []string{"agents:read"}, Selector: "env=nowhere"})
	}
	return startServer(t, spec)
}

// twoMembers starts members s1 and s2 of one cluster on the test's MySQL
// database and NATS server.
func twoMembers(t *testing.T) (s1, s2 *testServer) {
	t.Helper()
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	return clusterMember(t, dsn, natsURL, "s1"), clusterMember(t, dsn, natsURL, "s2")
}

func clusterConfig(c *config.Config, natsURL, id, addr string) {
	c.Cluster.Name, c.Cluster.Member, c.Cluster.NATSURL, c.Cluster.Advertise = "e2e", id, natsURL, "http://"+addr
	c.Cluster.Lease = utils.Duration(3 * time.Second)
}

func clusterInfo(ts *testServer, token string) (api.ClusterInfo, error) {
	e := ts.do("GET", "/api/cluster", token, nil)
	var v api.ClusterInfo
	if e.status != 200 {
		return v, fmt.Errorf("GET /api/cluster: %d %s", e.status, e.Msg)
	}
	return v, json.Unmarshal(e.Payload, &v)
}

// TestClusterMembership: two servers on one MariaDB database and one NATS
// see each other in /api/cluster with their load, lease and version; each
// says its cluster and member id in /api/info/server and is ready; one
// that stops leaves the list at once.
func TestClusterMembership(t *testing.T) {
	a, b := twoMembers(t)
	startAgent(t, b.addr, agentSpec{id: "c1"})
	b.waitOnline("c1")

	for _, ts := range []*testServer{a, b} {
		self := map[*testServer]string{a: "s1", b: "s2"}[ts]
		eventually.NoError(t, self+" lists both members with s2's load", func() error {
			v, err := clusterInfo(ts, opToken)
			if err != nil {
				return err
			}
			if !v.Enabled || v.Name != "e2e" || v.Self != self || v.NATS != "connected" || v.Problem != "" || len(v.Members) != 2 {
				return fmt.Errorf("cluster %+v", v)
			}
			for i, m := range v.Members {
				want := []string{"s1", "s2"}[i]
				addr := map[string]string{"s1": a.addr, "s2": b.addr}[want]
				if m.ID != want || m.State != "live" || m.Self != (want == self) || m.Version != "9.9.9-e2e" || m.Advertise != "http://"+addr ||
					m.Epoch != 1 || m.LeaseUntil == nil || m.RenewedAt == nil || !m.LeaseUntil.After(*m.RenewedAt) || m.Sessions == nil {
					return fmt.Errorf("member %d: %+v", i, m)
				}
				if wantLoad := map[string]int{"s1": 0, "s2": 1}[want]; *m.Sessions != wantLoad {
					return fmt.Errorf("member %s: %d sessions, want %d", want, *m.Sessions, wantLoad)
				}
			}
			return nil
		})
		info := payloadOf[api.ServerInfo](t, ts.get("/api/info/server"), "info/server")
		if info.Cluster != "e2e" || info.Member != self {
			t.Errorf("%s: info/server %+v", self, info)
		}
		if e := ts.do("GET", "/readyz", "", nil); e.status != 200 {
			t.Errorf("%s: readyz %d %s", self, e.status, e.Msg)
		}
	}

	// A token limited by a selector sees the members, not their load.
	v, err := clusterInfo(a, limitedToken)
	if err != nil || len(v.Members) != 2 || v.Members[0].Sessions != nil || v.Members[1].Sessions != nil {
		t.Errorf("limited token: %+v %v", v, err)
	}
	if e := a.do("GET", "/api/cluster", "", nil); e.status != 401 {
		t.Errorf("no token: %d", e.status)
	}

	// A clean stop deletes the member's row: gone at once, not after its lease.
	b.stop()
	v, err = clusterInfo(a, opToken)
	if err != nil || len(v.Members) != 1 || v.Members[0].ID != "s1" {
		t.Errorf("after s2 stopped: %+v %v", v, err)
	}
}

// TestClusterMemberIDTaken: a second server configured with a member id a
// live server holds does not start, and says which server holds it.
func TestClusterMemberIDTaken(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	a := clusterMember(t, dsn, natsURL, "s1")
	cfg := testserver.Config("e2e", t.TempDir())
	cfg.Store.Driver, cfg.Store.DSN = "mysql", dsn
	clusterConfig(&cfg, natsURL, "s1", freeAddr(t))
	s, err := server.New(context.Background(), cfg, server.Options{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		s.Close()
		t.Fatal("a second server with member id s1 started")
	}
	if want := "member id s1 is held by the server at http://" + a.addr; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	// The holder is unaffected.
	if v, err := clusterInfo(a, opToken); err != nil || len(v.Members) != 1 || v.Members[0].Epoch != 1 || v.Problem != "" {
		t.Errorf("holder: %+v %v", v, err)
	}
}

// TestClusterNATSOutage: while NATS cannot be reached the member is not
// ready and /api/cluster says why; it is ready again when NATS is back.
func TestClusterNATSOutage(t *testing.T) {
	dsn := mysqlDSN(t)
	proxy := natstest.NewProxy(t, natstest.Addr(t))
	a := clusterMember(t, dsn, proxy.URL(), "s1")
	ready := func(want int) func() error {
		return func() error {
			if e := a.do("GET", "/readyz", "", nil); e.status != want {
				return fmt.Errorf("readyz %d %q, want %d", e.status, e.Msg, want)
			}
			return nil
		}
	}
	eventually.NoError(t, "ready with NATS", ready(200))
	proxy.Cut(true)
	eventually.NoError(t, "not ready without NATS", ready(503))
	if e := a.do("GET", "/readyz", "", nil); !strings.Contains(e.Msg, "not ready: NATS unreachable") {
		t.Errorf("readyz message %q", e.Msg)
	}
	v, err := clusterInfo(a, opToken)
	if err != nil || !strings.Contains(v.Problem, "NATS unreachable") || v.NATS == "connected" || len(v.Members) != 1 {
		t.Errorf("during the outage: %+v %v", v, err)
	}
	proxy.Cut(false)
	eventually.NoError(t, "ready again", ready(200))
}

// TestClusterSingleServer: a server outside any cluster lists itself
// alone, live, with its load; its info and readiness are as before.
func TestClusterSingleServer(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{id: "one"})
	ts.waitOnline("one")
	v, err := clusterInfo(ts, opToken)
	if err != nil {
		t.Fatal(err)
	}
	if v.Enabled || v.Name != "" || v.Self != "e2e" || v.NATS != "" || len(v.Members) != 1 {
		t.Fatalf("single server: %+v", v)
	}
	m := v.Members[0]
	if m.ID != "e2e" || !m.Self || m.State != "live" || m.Version != "9.9.9-e2e" || m.Sessions == nil || *m.Sessions != 1 ||
		m.StartedAt.IsZero() || m.LeaseUntil != nil {
		t.Errorf("member %+v", m)
	}
	info := payloadOf[api.ServerInfo](t, ts.get("/api/info/server"), "info/server")
	if info.Cluster != "" || info.Member != "" || info.ID != "e2e" {
		t.Errorf("info/server %+v", info)
	}
	if e := ts.do("GET", "/readyz", "", nil); e.status != 200 {
		t.Errorf("readyz %d %s", e.status, e.Msg)
	}
}

// TestClusterMemberResumesNoTasks: a member that starts leaves alone the
// tasks running in the shared database that a live member owns, and those
// nobody owns (a server that does not own tasks may run them); a single
// server would take them up (or, for a layout, mark it failed).
func TestClusterMemberResumesNoTasks(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	a := clusterMember(t, dsn, natsURL, "s1")
	ctx := context.Background()
	unowned, err := a.srv.Store().CreateTask(ctx, store.Task{Kind: store.KindLayout, State: store.TaskRunning, Msg: "running somewhere"})
	if err != nil {
		t.Fatal(err)
	}
	// Owned by s1 as its own tasks are: its renewals keep the lease on.
	owned, err := a.srv.Store().CreateTask(ctx, store.Task{Kind: store.KindLayout, State: store.TaskRunning, Msg: "running on s1",
		Owner: store.TaskOwner{Member: "s1", Instance: memberInstance(t, a, "s1"), Until: time.Now().Add(3 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	b := clusterMember(t, dsn, natsURL, "s2")
	// Longer than the lease: s1's task would have lapsed without renewals.
	end := time.Now().Add(4 * time.Second)
	eventually.Within(t, 10*time.Second, "s2 ran its takeover rounds for more than a lease", func() bool { return time.Now().After(end) })
	for _, id := range []string{unowned.ID, owned.ID} {
		got, err := b.srv.Store().GetTask(ctx, id)
		if err != nil || got.State != store.TaskRunning {
			t.Errorf("after s2 started: %+v %v", got, err)
		}
	}
	if o, err := b.srv.Store().(store.TaskOwnerStore).TaskOwnerOf(ctx, owned.ID); err != nil || o.Member != "s1" || o.Token != 1 || !o.Until.After(time.Now()) {
		t.Errorf("owner of s1's task: %+v %v", o, err)
	}
}

// memberInstance is the instance of member id as ts lists it.
func memberInstance(t *testing.T, ts *testServer, id string) string {
	t.Helper()
	list, err := ts.srv.Store().(store.ClusterStore).ClusterMembers(context.Background(), "e2e")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if m.ID == id {
			return m.Instance
		}
	}
	t.Fatalf("member %s not listed: %+v", id, list)
	return ""
}

// TestClusterStoreOutage: a member cut from the database is not ready
// (store unreachable), fails its renewals, and the others list it expired
// once its lease has ended; when the database is back it renews its own row
// and is live and ready again.
func TestClusterStoreOutage(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := natstest.NewProxy(t, mc.Addr) // a plain TCP proxy, cut at will
	mc.Addr = strings.TrimPrefix(proxy.URL(), "nats://")
	a := clusterMember(t, mc.FormatDSN(), natsURL, "s1")
	b := clusterMember(t, dsn, natsURL, "s2")
	stateOfS1 := func(want string) func() error {
		return func() error {
			v, err := clusterInfo(b, opToken)
			if err != nil {
				return err
			}
			for _, m := range v.Members {
				if m.ID == "s1" && m.State == want {
					return nil
				}
			}
			return fmt.Errorf("s2 lists %+v, want s1 %s", v.Members, want)
		}
	}
	eventually.NoError(t, "s1 live", stateOfS1("live"))

	proxy.Cut(true)
	eventually.NoError(t, "s1 not ready", func() error {
		if e := a.do("GET", "/readyz", "", nil); e.status != 503 || e.Msg != "not ready: store unreachable" {
			return fmt.Errorf("readyz %d %q", e.status, e.Msg)
		}
		return nil
	})
	eventually.NoError(t, "s1 expired for s2", stateOfS1("expired"))
	if e := a.do("GET", "/api/cluster", opToken, nil); e.status != 503 || e.Msg != "cluster members unavailable: the store does not answer" {
		t.Errorf("s1's /api/cluster without its store: %d %q", e.status, e.Msg)
	}
	e := a.do("GET", "/metrics", "", nil)
	if !regexp.MustCompile(`(?m)^agentserver_cluster_lease_renew_failures_total [1-9]`).Match(e.body) {
		t.Errorf("no renewal failure counted:\n%s", linesWith(e.body, "agentserver_cluster_"))
	}

	proxy.Cut(false)
	eventually.NoError(t, "s1 live again", stateOfS1("live"))
	eventually.NoError(t, "s1 ready again", func() error {
		if e := a.do("GET", "/readyz", "", nil); e.status != 200 {
			return fmt.Errorf("readyz %d %q", e.status, e.Msg)
		}
		return nil
	})
	if v, err := clusterInfo(b, opToken); err != nil || len(v.Members) != 2 || v.Members[0].Epoch != 1 {
		t.Errorf("after the outage (s1 keeps its row and epoch): %+v %v", v, err)
	}
}

// linesWith returns the lines of b that contain s.
func linesWith(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
