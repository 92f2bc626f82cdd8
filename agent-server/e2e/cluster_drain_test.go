package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/api"
	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/natstest"
)

// Tokens of the drain tests: one holding cluster:write, one without it.
const (
	drainerName  = "drainer"
	drainerToken = "drainer-token-0123456789"
	readerName   = "reader"
	readerToken  = "reader-token-0123456789"
)

// drainMember starts member id with the drain tests' tokens and mod.
func drainMember(t *testing.T, dsn, natsURL, id string, mod func(*config.Config)) *testServer {
	t.Helper()
	addr := freeAddr(t)
	return startServer(t, serverSpec{addr: addr, mysql: dsn, mod: func(c *config.Config) {
		clusterConfig(c, natsURL, id, addr)
		c.API.Scoped = append(c.API.Scoped,
			config.ScopedToken{Name: drainerName, Secret: drainerToken, Scopes: []string{"cluster:write"}},
			config.ScopedToken{Name: readerName, Secret: readerToken, Scopes: []string{"agents:read"}})
		if mod != nil {
			mod(c)
		}
	}})
}

// onlineAt says whether every agent of ids is listed online at member by ts.
func onlineAt(t *testing.T, ts *testServer, member string, ids []string) error {
	list := memberAgents(t, ts, "size=1000")
	for _, id := range ids {
		i := slices.IndexFunc(list, func(x memberAgent) bool { return x.ID == id })
		if i < 0 || !list[i].IsOnline || list[i].Member != member {
			return fmt.Errorf("%s: %+v, want online at %s", id, list, member)
		}
	}
	return nil
}

// TestClusterDrain: six agents reach s1 through a shared address that
// leads to s1 only. The drain route refuses no token (401) and a token
// without cluster:write (403); with it, s1 drains: listed draining by both
// members, its sessions closed, and each agent, reconnecting to s1,
// redirected to s2 — where all end up, s1 with none. A second drain says
// it is draining already.
func TestClusterDrain(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	a := drainMember(t, dsn, natsURL, "s1", nil)
	b := drainMember(t, dsn, natsURL, "s2", nil)
	front := roundRobin(t, a.addr) // the shared address: s1 only
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("d%d", i)
		ids = append(ids, id)
		startAgent(t, front, agentSpec{id: id})
	}
	eventually.NoError(t, "the agents online at s1", func() error { return onlineAt(t, b, "s1", ids) })

	if e := a.do("POST", "/api/cluster/drain", "", nil); e.status != 401 {
		t.Errorf("drain without a token: %d %s, want 401", e.status, e.Msg)
	}
	if e := a.do("POST", "/api/cluster/drain", readerToken, nil); e.status != 403 {
		t.Errorf("drain with a token without cluster:write: %d %s, want 403", e.status, e.Msg)
	}
	if e := a.do("POST", "/api/cluster/drain?period=forever", drainerToken, nil); e.status != 400 {
		t.Errorf("drain with a bad period: %d %s, want 400", e.status, e.Msg)
	}
	if n := a.srv.Hub().Count(); n != 6 {
		t.Fatalf("refused drains: s1 holds %d sessions, want 6", n)
	}
	if v, err := clusterInfo(a, opToken); err != nil || v.Members[0].Draining {
		t.Fatalf("s1 draining after refused calls: %+v %v", v, err)
	}

	e := a.do("POST", "/api/cluster/drain?period=2s", drainerToken, nil)
	var st api.DrainStatus
	if e.status != 200 || json.Unmarshal(e.Payload, &st) != nil || st.Member != "s1" || st.Already || st.Period != "2s" {
		t.Fatalf("drain: %d %s %+v", e.status, e.Msg, st)
	}
	eventually.NoError(t, "the agents moved to s2", func() error { return onlineAt(t, b, "s2", ids) })
	eventually.True(t, "s1 holds no session", func() bool { return a.srv.Hub().Count() == 0 })
	for _, ts := range []*testServer{a, b} {
		eventually.NoError(t, "s1 listed draining", func() error {
			v, err := clusterInfo(ts, opToken)
			if err != nil {
				return err
			}
			for _, m := range v.Members {
				if m.Draining != (m.ID == "s1") {
					return fmt.Errorf("member %s draining %v", m.ID, m.Draining)
				}
			}
			return nil
		})
	}
	m := a.do("GET", "/metrics", "", nil)
	if !regexp.MustCompile(`(?m)^agentserver_cluster_drain_sessions_closed_total [1-6]$`).Match(m.body) ||
		!regexp.MustCompile(`(?m)^agentserver_cluster_redirects_total\{why="drain"\} [1-9][0-9]*$`).Match(m.body) {
		t.Errorf("drain not counted:\n%s", linesWith(m.body, "agentserver_cluster_"))
	}
	e = a.do("POST", "/api/cluster/drain", drainerToken, nil)
	if e.status != 200 || json.Unmarshal(e.Payload, &st) != nil || !st.Already || st.Sessions != 0 {
		t.Errorf("second drain: %d %s %+v", e.status, e.Msg, st)
	}
}

// TestClusterDrainOnStop: a member with cluster.drain_period stopped (as
// by SIGTERM) drains first: its agents, whose shared address leads to it
// only, are redirected to s2 before it is gone.
func TestClusterDrainOnStop(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	a := drainMember(t, dsn, natsURL, "s1", func(c *config.Config) { c.Cluster.DrainPeriod = utils.Duration(time.Second) })
	b := drainMember(t, dsn, natsURL, "s2", nil)
	front := roundRobin(t, a.addr)
	ids := []string{"t0", "t1", "t2"}
	for _, id := range ids {
		startAgent(t, front, agentSpec{id: id})
	}
	eventually.NoError(t, "the agents online at s1", func() error { return onlineAt(t, b, "s1", ids) })
	// s1 must know s2 is live before it stops (it closes nothing otherwise).
	eventually.NoError(t, "s1 lists s2", func() error {
		v, err := clusterInfo(a, opToken)
		if err != nil || len(v.Members) != 2 || !strings.Contains(fmt.Sprint(v.Members), "s2") {
			return fmt.Errorf("%+v %v", v, err)
		}
		return nil
	})
	a.stop()
	eventually.NoError(t, "the agents moved to s2", func() error { return onlineAt(t, b, "s2", ids) })
}
