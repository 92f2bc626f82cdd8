package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/api"
	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/natstest"
	"github.com/agentfleet/agent-server/internal/store"
)

// memberAgent is an agent as /api/agents lists it in a cluster.
type memberAgent struct {
	ID          string    `json:"id"`
	IsOnline    bool      `json:"is_online"`
	IsBusy      bool      `json:"is_busy"`
	Member      string    `json:"member"`
	ConnectedAt time.Time `json:"connected_at"`
}

func memberAgents(t *testing.T, ts *testServer, query string) []memberAgent {
	t.Helper()
	e := ts.do("GET", "/api/agents?"+query, opToken, nil)
	if e.status != 200 {
		t.Fatalf("list agents: %d %s", e.status, e.Msg)
	}
	var out []memberAgent
	if err := json.Unmarshal(e.Payload, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// doHeader is ts.do with extra request headers (and no body).
func (ts *testServer) doHeader(method, path, token string, h map[string]string) envelope {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var e envelope
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	e.status, e.header = resp.StatusCode, resp.Header
	return e
}

// TestClusterForwarding: an agent connected to member s2 is listed by s1
// online with its member, and every call for it made to s1 is answered by
// s2 — the same status and body as through s2 for a good token, no token,
// a token without the scope and a token whose selector does not reach it —
// and audited once, by s2. A call forwarded once is not forwarded again.
func TestClusterForwarding(t *testing.T) {
	a, b := twoMembers(t)
	startAgent(t, b.addr, agentSpec{id: "f1"})
	b.waitOnline("f1")

	for _, ts := range []*testServer{a, b} {
		eventually.NoError(t, "f1 listed online at s2", func() error {
			for _, q := range []string{"", "online=true", "size=1000"} {
				list := memberAgents(t, ts, q)
				i := slices.IndexFunc(list, func(x memberAgent) bool { return x.ID == "f1" })
				if i < 0 || !list[i].IsOnline || list[i].Member != "s2" || list[i].ConnectedAt.IsZero() {
					return fmt.Errorf("query %q: %+v", q, list)
				}
			}
			if list := memberAgents(t, ts, "online=false"); slices.ContainsFunc(list, func(x memberAgent) bool { return x.ID == "f1" }) {
				return fmt.Errorf("online=false lists f1: %+v", list)
			}
			return nil
		})
		var one memberAgent
		e := ts.do("GET", "/api/agents/f1", opToken, nil)
		if e.status != 200 || json.Unmarshal(e.Payload, &one) != nil || !one.IsOnline || one.Member != "s2" {
			t.Errorf("GET /api/agents/f1: %d %s %+v", e.status, e.body, one)
		}
	}

	// The same answers through s1 as through s2.
	for _, c := range []struct {
		name, path, token string
		status            int
	}{
		{"call", "/api/foo/f1", opToken, 200},
		{"no token", "/api/foo/f1", "", 401},
		{"scope missing", "/api/foo/f1", roToken, 403},
		{"outside the selector", "/api/agents/f1", limitedToken, 404},
		{"agent gone", "/api/foo/nobody", opToken, 404},
	} {
		direct, fwd := b.do("GET", c.path, c.token, nil), a.do("GET", c.path, c.token, nil)
		if direct.status != c.status || fwd.status != c.status || direct.Msg != fwd.Msg || sameShape(direct.Payload) != sameShape(fwd.Payload) {
			t.Errorf("%s: direct %d %s, forwarded %d %s", c.name, direct.status, direct.body, fwd.status, fwd.body)
		}
		if c.name != "agent gone" && fwd.header.Get(api.HeaderForwardedBy) != "" {
			t.Errorf("%s: the forwarding header leaked into the response", c.name)
		}
	}

	// One audit entry for a forwarded call, written by s2, naming s1.
	const reqID = "fwd-audit-1"
	if e := a.doHeader("GET", "/api/foo/f1", opToken, map[string]string{"X-Request-Id": reqID}); e.status != 200 || e.header.Get("X-Request-Id") != reqID {
		t.Fatalf("forwarded call: %d %s, request id %q", e.status, e.Msg, e.header.Values("X-Request-Id"))
	}
	list, _, err := a.srv.Store().ListAudit(context.Background(), store.AuditFilter{Agent: "f1", Paging: store.Paging{Size: 100}})
	if err != nil {
		t.Fatal(err)
	}
	var got []store.AuditEntry
	for _, e := range list {
		if e.RequestID == reqID {
			got = append(got, e)
		}
	}
	if len(got) != 1 || got[0].Status != 200 || got[0].Action != "GET /api/foo/{id}" {
		t.Fatalf("audit entries of the forwarded call: %+v", got)
	}
	if want := "forwarded by member s1"; !strings.Contains(got[0].Remote, want) {
		t.Errorf("audit remote %q, want it to say %q", got[0].Remote, want)
	}

	// Hop limit: a call that says it was forwarded already, to a member
	// that does not hold the agent, is not forwarded again.
	e := a.doHeader("GET", "/api/foo/f1", opToken, map[string]string{api.HeaderForwardedBy: "s9"})
	if e.status != 503 || e.header.Get("Retry-After") == "" || !strings.Contains(e.Msg, "agent f1 moved to member s2") {
		t.Errorf("second hop: %d %q Retry-After %q", e.status, e.Msg, e.header.Get("Retry-After"))
	}

	// Every route that names an agent is relayed (seen here by its hop
	// limit), except those served from the shared store.
	var walked int
	for pattern, rule := range a.srv.API().Rules() {
		if rule.AgentParam == "" {
			continue
		}
		if !rule.Forwarded {
			if pattern != "GET /api/tasks/{id}/agents/{agent}/output" {
				t.Errorf("%s names an agent but is not forwarded", pattern)
			}
			continue
		}
		walked++
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.ReplaceAll(path, "{"+rule.AgentParam+"}", "f1")
		path = regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
		e := a.doHeader(method, path, opToken, map[string]string{api.HeaderForwardedBy: "s9"})
		if e.status != 503 || !strings.Contains(e.Msg, "agent f1 moved to member s2") {
			t.Errorf("%s %s with a hop taken: %d %q", method, path, e.status, e.Msg)
		}
	}
	if walked < 20 {
		t.Errorf("only %d forwarded routes", walked)
	}

	// The forwards are counted by outcome.
	m := a.do("GET", "/metrics", "", nil)
	for _, outcome := range []string{"relayed", "moved"} {
		if !regexp.MustCompile(`(?m)^agentserver_api_forwarded_total\{outcome="` + outcome + `"\} [1-9]`).Match(m.body) {
			t.Errorf("no %s forward counted:\n%s", outcome, linesWith(m.body, "agentserver_api_forwarded"))
		}
	}

	// Stopped cleanly, s2 clears its sessions: s1 lists f1 offline at once
	// (the agent reconnects to s2 only, which is gone).
	b.stop()
	eventually.NoError(t, "f1 offline at s1", func() error {
		list := memberAgents(t, a, "size=1000")
		if i := slices.IndexFunc(list, func(x memberAgent) bool { return x.ID == "f1" }); i < 0 || list[i].IsOnline || list[i].Member != "" {
			return fmt.Errorf("%+v", list)
		}
		return nil
	})
	if e := a.do("GET", "/api/foo/f1", opToken, nil); e.status != 404 {
		t.Errorf("after s2 stopped: %d %s", e.status, e.Msg)
	}
}

// sameShape is a payload without its timings (the "ms" of a call), for
// comparing two answers of the same call.
func sameShape(p json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(p, &m) != nil {
		return string(p)
	}
	delete(m, "ms")
	b, _ := json.Marshal(m)
	return string(b)
}

// TestClusterSessionTakeover: an agent whose session at s2 still looks
// alive connects to s1 proving its secret (a copy of its state): s1 asks
// s2 to release it (NATS), s2 closes its session at once, and s1 holds the
// agent with the next fencing token; s2's late clear of the old token
// leaves s1's row alone.
func TestClusterSessionTakeover(t *testing.T) {
	a, b := twoMembers(t)
	state := filepath.Join(t.TempDir(), "agent.state")
	// The first copy waits long before reconnecting once replaced.
	startAgent(t, b.addr, agentSpec{id: "t1", state: state, backoff: &backoff.Backoff{Min: 10 * time.Minute, Max: 10 * time.Minute}})
	b.waitOnline("t1")
	first, ok := b.srv.Hub().Session("t1")
	if !ok || first.ClaimToken() < 1 {
		t.Fatalf("t1 at s2: %v %v", ok, first)
	}
	var st []byte
	eventually.NoError(t, "t1's state saved", func() (err error) {
		st, err = os.ReadFile(state)
		if err == nil && !strings.Contains(string(st), "secret") {
			err = fmt.Errorf("no secret in %s", st)
		}
		return err
	})
	copied := filepath.Join(t.TempDir(), "agent.state")
	if err := os.WriteFile(copied, st, 0o600); err != nil {
		t.Fatal(err)
	}
	startAgent(t, a.addr, agentSpec{id: "t1", state: copied})
	eventually.NoError(t, "t1 at s1, not at s2", func() error {
		sess, ok := a.srv.Hub().Session("t1")
		if !ok {
			return fmt.Errorf("not at s1")
		}
		if _, ok := b.srv.Hub().Session("t1"); ok {
			return fmt.Errorf("still at s2")
		}
		if sess.ClaimToken() <= first.ClaimToken() {
			return fmt.Errorf("token %d after %d", sess.ClaimToken(), first.ClaimToken())
		}
		return nil
	})
	for _, ts := range []*testServer{a, b} {
		eventually.NoError(t, "t1 listed at s1", func() error {
			list := memberAgents(t, ts, "online=true")
			if i := slices.IndexFunc(list, func(x memberAgent) bool { return x.ID == "t1" }); i < 0 || list[i].Member != "s1" {
				return fmt.Errorf("%+v", list)
			}
			return nil
		})
	}
	// Calls through s2 now reach the agent at s1.
	if e := b.do("GET", "/api/foo/t1", opToken, nil); e.status != 200 {
		t.Errorf("foo through s2: %d %s", e.status, e.Msg)
	}
}

// TestClusterRejoinTakesSessionsBack: s1 is cut from the database past its
// lease and the grace, so s2 removes its row and releases its sessions (its
// agent is listed offline); when the database is back, s1 joins again and
// takes back the session of the agent still connected to it.
func TestClusterRejoinTakesSessionsBack(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := natstest.NewProxy(t, mc.Addr) // a plain TCP proxy, cut at will
	mc.Addr = strings.TrimPrefix(proxy.URL(), "nats://")
	grace := func(c *config.Config) {
		c.Cluster.MemberGrace = utils.Duration(3 * time.Second)
		c.Cluster.LeaseLostClose = 0 // s1 keeps its session while its lease has ended, to take it back
	}
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startServer(t, serverSpec{addr: addrA, mysql: mc.FormatDSN(), mod: func(c *config.Config) { clusterConfig(c, natsURL, "s1", addrA); grace(c) }})
	b := startServer(t, serverSpec{addr: addrB, mysql: dsn, mod: func(c *config.Config) { clusterConfig(c, natsURL, "s2", addrB); grace(c) }})
	startAgent(t, a.addr, agentSpec{id: "r1"})
	online := func(want bool) func() error {
		return func() error {
			list := memberAgents(t, b, "size=1000")
			i := slices.IndexFunc(list, func(x memberAgent) bool { return x.ID == "r1" })
			if i < 0 || list[i].IsOnline != want || want && list[i].Member != "s1" {
				return fmt.Errorf("s2 lists %+v, want r1 online=%v", list, want)
			}
			return nil
		}
	}
	eventually.NoError(t, "r1 online at s1", online(true))
	first, ok := a.srv.Hub().Session("r1")
	if !ok {
		t.Fatal("r1 not at s1")
	}

	proxy.Cut(true)
	eventually.NoError(t, "s1 removed by s2", func() error {
		v, err := clusterInfo(b, opToken)
		if err != nil {
			return err
		}
		if len(v.Members) != 1 {
			return fmt.Errorf("members %+v", v.Members)
		}
		return nil
	})
	eventually.NoError(t, "r1 offline for s2", online(false))
	proxy.Cut(false)
	eventually.NoError(t, "r1 online at s1 again", online(true))
	// The store row says s1 before s1's session holds the new token (the
	// take is written first, then the session learns its token): wait for
	// both, as a caller would.
	eventually.NoError(t, "r1's session at s1 taken back", func() error {
		sess, ok := a.srv.Hub().Session("r1")
		if !ok || sess != first {
			return fmt.Errorf("r1 at s1: %v, the same session %v", ok, sess == first)
		}
		if sess.ClaimToken() <= 1 {
			return fmt.Errorf("r1's token at s1: %d, want > 1 (taken back)", sess.ClaimToken())
		}
		return nil
	})
	if e := b.do("GET", "/api/foo/r1", opToken, nil); e.status != 200 {
		t.Errorf("foo through s2: %d %s", e.status, e.Msg)
	}
}
