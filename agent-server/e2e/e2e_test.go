package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"

	"github.com/agentfleet/jkframe/eventually"
)

func roundTrip(t *testing.T, ts *testServer, id string) {
	t.Helper()
	e := ts.get("/api/foo/" + id)
	var p struct {
		Reply string  `json:"reply"`
		MS    float64 `json:"ms"`
	}
	if e.status != 200 || json.Unmarshal(e.Payload, &p) != nil || p.Reply != "bar" {
		t.Fatalf("foo %s: %d %s %s", id, e.status, e.Msg, e.Payload)
	}
}

func testFoo(t *testing.T, mysql string) {
	ts := startServer(t, serverSpec{mysql: mysql})
	startAgent(t, ts.addr, agentSpec{id: "ex-1", labels: []string{"env=prod"}})
	ts.waitOnline("ex-1")
	roundTrip(t, ts, "ex-1")

	e := ts.get("/api/agents/ex-1")
	var a apiAgent
	if err := json.Unmarshal(e.Payload, &a); err != nil || e.status != 200 {
		t.Fatalf("get agent: %d %s", e.status, e.body)
	}
	if !a.IsOnline || a.Type != "example-agent" || a.Version != "1.2.3" || a.ConnectedAt.IsZero() || a.Labels["env"] != "prod" || a.IP == "" || a.OS == "" {
		t.Errorf("agent = %+v", a)
	}
	var info struct {
		ID      string `json:"id"`
		Version string `json:"version"`
		Agents  int    `json:"agents"`
	}
	e = ts.get("/api/info/server")
	if json.Unmarshal(e.Payload, &info) != nil || info != (struct {
		ID      string `json:"id"`
		Version string `json:"version"`
		Agents  int    `json:"agents"`
	}{"e2e", "9.9.9-e2e", 1}) {
		t.Errorf("info = %s", e.body)
	}
	if got := ts.agents("labels=env%3Dprod&keyword=EX-"); len(got) != 1 {
		t.Errorf("label+keyword filter: %+v", got)
	}
	if got := ts.agents("labels=env%3Ddev"); len(got) != 0 {
		t.Errorf("label filter: %+v", got)
	}
}

func TestFooRoundTrip(t *testing.T) { testFoo(t, "") }

func TestFooRoundTripMariaDB(t *testing.T) { testFoo(t, mysqlDSN(t)) }

func TestFooWrongType(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{id: "exec-1", name: "exec-agent"})
	ts.waitOnline("exec-1")
	e := ts.get("/api/foo/exec-1")
	if e.status != 424 || e.Msg != "invalid agent type want [example-agent] got [exec-agent]" {
		t.Fatalf("foo to exec-agent: %d %q", e.status, e.Msg)
	}
}

func TestAPIAuth(t *testing.T) {
	ts := startServer(t, serverSpec{mod: func(c *config.Config) { c.API.MetricsToken = "metrics-token-0123456789" }})
	tests := []struct {
		method, path, token string
		body                string
		code                int
		msg                 string
	}{
		{"GET", "/api/agents", "", "", 401, "unauthorized: missing bearer token"},
		{"GET", "/api/agents", "wrong-token-0123456789", "", 401, "unauthorized: invalid token"},
		{"GET", "/api/info/server", opToken + "x", "", 401, "unauthorized: invalid token"},
		{"GET", "/api/openapi.json", "", "", 401, "unauthorized: missing bearer token"},
		{"PUT", "/api/agents/a1/labels", roToken, `{"labels":{}}`, 403, "forbidden: the token lacks scope agents:write"},
		{"GET", "/api/file/a1/ls?dir=/", roToken, "", 403, "forbidden: the token lacks scope files:read"},
		{"GET", "/api/whoami", roToken, "", 200, ""},
		{"GET", "/api/whoami", "", "", 401, "unauthorized: missing bearer token"},
		{"GET", "/api/agents", agentToken, "", 401, "unauthorized: invalid token"}, // an enrollment token is no API token
		{"PUT", "/api/agents/a1/labels", "", `{"labels":{}}`, 401, "unauthorized: missing bearer token"},
		{"GET", "/api/agents", roToken, "", 200, ""},
		{"GET", "/api/audit", roToken, "", 200, ""},
		{"GET", "/metrics", "", "", 401, "unauthorized: missing bearer token"},
		{"GET", "/metrics", "bad-metrics-token-01234", "", 401, "unauthorized: invalid token"},
		{"GET", "/metrics", "metrics-token-0123456789", "", 200, ""},
		{"GET", "/healthz", "", "", 200, ""},
		{"GET", "/readyz", "", "", 200, ""},
		{"GET", "/docs/", "", "", 200, ""},
	}
	for _, tt := range tests {
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		e := ts.do(tt.method, tt.path, tt.token, body)
		if e.status != tt.code || e.Msg != tt.msg {
			t.Errorf("%s %s token %q: %d %q, want %d %q", tt.method, tt.path, tt.token, e.status, e.Msg, tt.code, tt.msg)
		}
	}
	// Bearer in another case, and a Basic header.
	req, _ := http.NewRequest("GET", ts.url+"/api/agents", nil)
	req.Header.Set("Authorization", "bearer "+opToken)
	if resp, err := ts.client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("lower-case bearer: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	req.Header.Set("Authorization", "Basic "+opToken)
	if resp, err := ts.client.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("Basic auth: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

func TestAgentAuth(t *testing.T) {
	ts := startServer(t, serverSpec{})
	tests := []struct {
		name, header string
		code         int
	}{
		{"no token", "", 401},
		{"bad token", "Bearer not-the-agent-token-000", 401},
		{"api token is not an agent token", "Bearer " + opToken, 401},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Authorization", tt.header)
		}
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+"/ws/agent", h)
		if err == nil {
			c.Close()
			t.Errorf("%s: upgrade accepted", tt.name)
			continue
		}
		if resp == nil || resp.StatusCode != tt.code {
			t.Errorf("%s: %v %v", tt.name, resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	// A real agent with a wrong token never gets online; the right one does.
	startAgent(t, ts.addr, agentSpec{id: "bad", token: "wrong-enrollment-token-00"})
	startAgent(t, ts.addr, agentSpec{id: "good"})
	ts.waitOnline("good")
	if _, ok := ts.srv.Hub().Session("bad"); ok {
		t.Error("agent with a wrong token is connected")
	}

	// allow_legacy_agents admits an upgrade without a token, never a wrong one.
	ts2 := startServer(t, serverSpec{mod: func(c *config.Config) { c.AllowLegacyAgents = true }})
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+ts2.addr+"/ws/agent", nil)
	if err != nil {
		t.Fatalf("legacy upgrade refused: %v %v", resp, err)
	}
	if resp.StatusCode != 101 {
		t.Errorf("legacy upgrade: %d", resp.StatusCode)
	}
	c.Close()
	h := http.Header{"Authorization": {"Bearer wrong-token-000000000"}}
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+ts2.addr+"/ws/agent", h); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("legacy server accepted a wrong token: %v", err)
	} else {
		resp.Body.Close()
	}
}

// TestBadInput: every route answers bad input with the documented status
// and message, never 500.
func TestBadInput(t *testing.T) {
	ts := startServer(t, serverSpec{mod: func(c *config.Config) { c.API.MaxBody = 2048 }})
	startAgent(t, ts.addr, agentSpec{id: "ex-1"})
	ts.waitOnline("ex-1")
	big := `{"labels":{"a":"` + strings.Repeat("x", 4096) + `"}}`
	checkAPI(t, ts, strings.HasPrefix, []apiCase{
		{"GET", "/api/agents?page=0", "", 400, "invalid parameter page: must be an integer between 1 and 1073741824"},
		{"GET", "/api/agents?page=x", "", 400, "invalid parameter page: must be an integer between 1 and 1073741824"},
		{"GET", "/api/agents?size=200001", "", 400, "invalid parameter size: must be an integer between 1 and 200000"},
		{"GET", "/api/agents?size=-1", "", 400, "invalid parameter size: must be an integer between 1 and 200000"},
		{"GET", "/api/agents?size=5000", "", 200, ""},
		{"GET", "/api/agents?online=maybe", "", 400, "invalid parameter online: must be true or false"},
		{"GET", "/api/agents?labels=%3D%3D", "", 400, "invalid parameter labels: "},
		{"GET", "/api/agents?page=99999", "", 200, ""},
		{"GET", "/api/agents?sort=labels", "", 400, `invalid parameter sort: sort key "labels" (one of id, type,`},
		{"GET", "/api/agents?sort=--id", "", 400, `invalid parameter sort: sort key "-id"`},
		{"GET", "/api/agents?sort=-last_seen&online=false", "", 200, ""},
		{"GET", "/api/agents/nope", "", 404, "not found: agent"},
		{"GET", "/api/agents/" + strings.Repeat("z", 300), "", 404, "not found: agent"},
		{"PUT", "/api/agents/ex-1/labels", "", 400, "missing JSON body"},
		{"PUT", "/api/agents/ex-1/labels", "{", 400, "invalid JSON body: unexpected end of input"},
		{"PUT", "/api/agents/ex-1/labels", `{"labels":{"a":"b"}} x`, 400, "invalid JSON body: data after the JSON value"},
		{"PUT", "/api/agents/ex-1/labels", `{"labels":"a=b"}`, 400, "invalid parameter labels: must be an object (got string)"},
		{"PUT", "/api/agents/ex-1/labels", `{"colour":1}`, 400, "unknown parameter colour"},
		{"PUT", "/api/agents/ex-1/labels", `{}`, 400, "missing parameter labels"},
		{"PUT", "/api/agents/ex-1/labels", `{"labels":{"bad key":"v"}}`, 400, "invalid parameter labels: "},
		{"PUT", "/api/agents/ex-1/labels", big, 413, "request body too large (limit 2048 bytes)"},
		{"PUT", "/api/agents/nope/labels", `{"labels":{"a":"b"}}`, 404, "not found: agent"},
		{"GET", "/api/agents/nope/logs", "", 404, "not found: agent"},
		{"GET", "/api/agents/ex-1/logs?timeout=0", "", 400, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 1h0m0s"},
		{"GET", "/api/agents/ex-1/logs?timeout=abc", "", 400, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 1h0m0s"},
		{"GET", "/api/agents/ex-1/log/download", "", 400, "missing parameter files"},
		{"GET", "/api/agents/ex-1/log/download?files=../etc/passwd", "", 400, `invalid parameter files: "../etc/passwd" is not a plain file name`},
		{"GET", "/api/agents/ex-1/log/download?files=..", "", 400, `invalid parameter files: ".." is not a plain file name`},
		{"GET", "/api/agents/nope/log/download?files=a.log", "", 404, "not found: agent"},
		{"GET", "/api/agents/ex-1/log/download?files=nope.log", "", 404, `log download "nope.log": not a log file of this agent`},
		{"GET", "/api/foo/nope", "", 404, "not found: agent"},
		{"GET", "/api/foo/ex-1?timeout=-5", "", 400, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 1h0m0s"},
		{"GET", "/api/foo/ex-1?timeout=2h", "", 400, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 1h0m0s"},
		{"GET", "/api/audit?since=yesterday", "", 400, "invalid parameter since: must be an RFC 3339 time or unix seconds"},
		{"GET", "/api/audit?until=-1", "", 400, "invalid parameter until: must be an RFC 3339 time or unix seconds"},
		{"GET", "/api/audit?size=0", "", 400, "invalid parameter size: must be an integer between 1 and 1000"},
		{"GET", "/api/audit?since=2026-01-01T00:00:00Z&actor=ops", "", 200, ""},
		{"POST", "/api/agents", "{}", 405, "method not allowed: POST (allowed: GET)"},
		{"DELETE", "/api/foo/ex-1", "", 405, "method not allowed: DELETE (allowed: GET)"},
		{"GET", "/api/nothing/here", "", 404, "not found: route"},
		{"GET", "/api/info/server?x=%zz", "", 200, ""},
	})
}

// apiCase is a request with the operator token (body "": none) and the
// status and message it must be answered with.
type apiCase struct {
	method, path, body string
	status             int
	msg                string
}

// checkAPI sends every case and checks its answer: the status, the
// message as match (strings.HasPrefix, strings.Contains, or equal)
// says, an empty message with an empty 200, no 5xx but 503, and a reqid
// with an error.
func checkAPI(t *testing.T, ts *testServer, match func(msg, want string) bool, cases []apiCase) {
	t.Helper()
	for _, c := range cases {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		e := ts.do(c.method, c.path, opToken, body)
		if e.status >= 500 && e.status != 503 || e.status != c.status || !match(e.Msg, c.msg) || (c.msg == "" && c.status == 200 && e.Msg != "") {
			t.Errorf("%s %s %.200q: %d %.200q, want %d %.200q", c.method, c.path, c.body, e.status, e.Msg, c.status, c.msg)
		}
		if e.status >= 400 && e.ReqID == "" {
			t.Errorf("%s %s: error without reqid", c.method, c.path)
		}
	}
}

func equal(a, b string) bool { return a == b }

// TestAgentDropsMidRequest: a request pending at an agent whose connection
// breaks is answered 410 within a second.
func TestAgentDropsMidRequest(t *testing.T) {
	ts := startServer(t, serverSpec{})
	px := newProxy(t, ts.addr)
	ag := startAgent(t, px.Addr(), agentSpec{id: "slow", block: true})
	ts.waitOnline("slow")
	res := make(chan envelope, 1)
	go func() { res <- ts.do("GET", "/api/foo/slow?timeout=30", opToken, nil) }()
	select {
	case <-ag.fooIn:
	case <-time.After(30 * time.Second):
		t.Fatal("foo never reached the agent")
	}
	start := time.Now()
	px.Cut()
	select {
	case e := <-res:
		if e.status != 410 || e.Msg != "agent went away: the connection closed before it answered" {
			t.Errorf("after the drop: %d %q", e.status, e.Msg)
		}
		// The call's own timeout is 30 s: an answer well before it came
		// from the drop (how soon depends on the machine's load).
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("410 took %v", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer 20 s after the agent dropped")
	}
}

// TestRestart: agents come back after a server restart, and what the store
// held (agents, labels, audit) is still there.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir})
	ids := []string{"r-1", "r-2", "r-3"}
	for _, id := range ids {
		startAgent(t, ts.addr, agentSpec{id: id})
	}
	for _, id := range ids {
		ts.waitOnline(id)
	}
	if e := ts.do("PUT", "/api/agents/r-2/labels", opToken, strings.NewReader(`{"labels":{"rack":"r12"}}`)); e.status != 200 {
		t.Fatalf("labels: %d %s", e.status, e.Msg)
	}
	addr := ts.addr
	ts.stop()

	ts2 := startServer(t, serverSpec{dataDir: dir, addr: addr})
	for _, id := range ids {
		ts2.waitOnline(id)
		roundTrip(t, ts2, id)
	}
	all := ts2.agents("")
	if len(all) != 3 {
		t.Fatalf("agents after restart: %+v", all)
	}
	for _, a := range all {
		if a.ID == "r-2" && a.Labels["rack"] != "r12" {
			t.Errorf("labels lost: %+v", a)
		}
		if a.LastSeen.IsZero() {
			t.Errorf("%s: no last_seen", a.ID)
		}
	}
	e := ts2.get("/api/audit?actor=ops&action=" + url.QueryEscape("PUT /api/agents/{id}/labels"))
	var entries []struct {
		Actor, Action, Target, Result string
	}
	if err := json.Unmarshal(e.Payload, &entries); err != nil || len(entries) != 1 {
		t.Fatalf("audit after restart: %s", e.body)
	}
	if got := entries[0]; got.Action != "PUT /api/agents/{id}/labels" || got.Target != "r-2" || got.Result != "ok" {
		t.Errorf("audit entry %+v", got)
	}
	if e.header.Get("X-Total-Count") != "1" {
		t.Errorf("X-Total-Count %q", e.header.Get("X-Total-Count"))
	}
}

// TestOfflineListing: an agent that left stays listed, offline.
func TestOfflineListing(t *testing.T) {
	ts := startServer(t, serverSpec{})
	a := startAgent(t, ts.addr, agentSpec{id: "gone"})
	startAgent(t, ts.addr, agentSpec{id: "here"})
	ts.waitOnline("gone")
	ts.waitOnline("here")
	a.stop(t)
	eventually.Within(t, 30*time.Second, "gone offline", func() bool {
		off := ts.agents("online=false")
		return len(off) == 1 && off[0].ID == "gone" && !off[0].IsOnline
	})
	on := ts.agents("online=true")
	if len(on) != 1 || on[0].ID != "here" || !on[0].IsOnline {
		t.Errorf("online: %+v", on)
	}
	if all := ts.agents(""); len(all) != 2 {
		t.Errorf("all: %+v", all)
	}
	if e := ts.get("/api/agents/gone"); e.status != 200 || !strings.Contains(string(e.Payload), `"is_online":false`) {
		t.Errorf("offline agent: %d %s", e.status, e.Payload)
	}
}

func metricsText(t *testing.T, ts *testServer) string {
	e := ts.do("GET", "/metrics", "", nil)
	if e.status != 200 {
		t.Fatalf("/metrics: %d", e.status)
	}
	return string(e.body)
}

// TestAgentMetrics: agent_info / agent_version appear with the self-report
// and disappear when the agent disconnects.
func TestAgentMetrics(t *testing.T) {
	ts := startServer(t, serverSpec{})
	a := startAgent(t, ts.addr, agentSpec{id: "m-1", monitor: 50 * time.Millisecond})
	ts.waitOnline("m-1")
	eventually.Within(t, 30*time.Second, "agent series", func() bool {
		m := metricsText(t, ts)
		return strings.Contains(m, `agent_info{agent_type="example-agent",id="m-1",tag="routines"}`) &&
			strings.Contains(m, `agent_version{go_version="go`) && strings.Contains(m, `id="m-1",version="1.2.3"} 1`)
	})
	m := metricsText(t, ts)
	for _, want := range []string{`agentserver_api_requests_total{route="GET /api/agents",status="200"}`, "agentserver_api_request_duration_seconds_bucket", "agentserver_hub_connected_agents", `agentserver_tasks{state="running"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	a.stop(t)
	eventually.Within(t, 30*time.Second, "agent series removed", func() bool {
		m := metricsText(t, ts)
		return !strings.Contains(m, `id="m-1"`)
	})
}

// TestLogs: the agent's log listing and a multi-block zip download.
func TestLogs(t *testing.T) {
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	f, _ := zw.Create("example-agent.log")
	for i := range 3000 {
		_, _ = f.Write([]byte(time.Unix(int64(i), 0).UTC().Format(time.RFC3339) + " a log line that compresses\n"))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zipBytes := zbuf.Bytes()
	mod := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	setup := func(rt *libagent.Runtime) {
		rt.Handle(protocol.TypeLogLsReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLogLsRep, Payload: &protocol.LogLs{Files: []protocol.LogFile{{Name: "example-agent.log", Size: 42, ModTime: mod}}}})
		})
		rt.Handle(protocol.TypeLogDownloadReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			if !slices.Equal(req.LogDReq().Files, []string{"example-agent.log"}) {
				return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLogDownloadInfo, Payload: &protocol.LogDownloadInfo{Msg: "not a log file of this agent"}})
			}
			info := &protocol.LogDownloadInfo{OK: true, Size: uint64(len(zipBytes)), BlockSize: 1000, MD5: md5.Sum(zipBytes)}
			if err := w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLogDownloadInfo, Payload: info}); err != nil {
				return err
			}
			for off := 0; off < len(zipBytes); off += 1000 {
				d := &protocol.LogDownloadData{Offset: uint64(off), Data: compress.Encode(zipBytes[off:min(off+1000, len(zipBytes))])}
				if err := w.Reply(ctx, &protocol.Msg{Type: protocol.TypeLogDownloadData, Payload: d}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{id: "l-1", setup: setup})
	ts.waitOnline("l-1")
	e := ts.get("/api/agents/l-1/logs")
	if e.status != 200 || string(e.Payload) != `[{"name":"example-agent.log","size":42,"mod_time":1795514400,"modified_at":"2026-11-24T10:00:00Z"}]` {
		t.Errorf("logs: %d %s", e.status, e.body)
	}
	e = ts.get("/api/agents/l-1/log/download?files=example-agent.log")
	if e.status != 200 || !bytes.Equal(e.body, zipBytes) || e.header.Get("Content-Type") != "application/zip" ||
		e.header.Get("Content-Disposition") != `attachment; filename="l-1-logs.zip"` {
		t.Fatalf("download: %d %d bytes %v", e.status, len(e.body), e.header)
	}
	if _, err := zip.NewReader(bytes.NewReader(e.body), int64(len(e.body))); err != nil {
		t.Errorf("downloaded zip: %v", err)
	}
	e = ts.get("/api/agents/l-1/log/download?files=a.log&files=example-agent.log")
	if e.status != 503 || e.Msg != "not a log file of this agent" {
		t.Errorf("unknown file: %d %q", e.status, e.Msg)
	}
}

// TestOpenAPIGolden: the document lists exactly the registered routes.
func TestOpenAPIGolden(t *testing.T) {
	ts := startServer(t, serverSpec{})
	routes := ts.srv.API().Routes()
	ops := ts.srv.API().Doc().Operations()
	for _, r := range routes {
		if !slices.Contains(ops, r) {
			t.Errorf("route %q is not in internal/openapi/openapi.yaml", r)
		}
	}
	for _, o := range ops {
		if !slices.Contains(routes, o) {
			t.Errorf("openapi.yaml documents %q, which is not a route", o)
		}
	}
	e := ts.get("/api/openapi.json")
	var doc map[string]any
	if e.status != 200 || json.Unmarshal(e.body, &doc) != nil || doc["openapi"] != "3.0.3" {
		t.Errorf("openapi.json: %d", e.status)
	}
	if e := ts.get("/api/openapi.yaml"); e.status != 200 || !bytes.HasPrefix(e.body, []byte("openapi: 3.0.3")) {
		t.Errorf("openapi.yaml: %d", e.status)
	}
	// The reference page (Swagger UI over openapi.json) and the console are
	// public: they hold no data, the API calls they make need the token.
	if e := ts.do("GET", "/docs/", "", nil); e.status != 200 || !bytes.Contains(e.body, []byte("/docs/swagger-ui-bundle.js")) {
		t.Errorf("/docs/: %d", e.status)
	}
	if e := ts.do("GET", "/ui/fleet", "", nil); e.status != 200 || !bytes.Contains(e.body, []byte(`src="/ui/app.js"`)) {
		t.Errorf("/ui/fleet: %d", e.status)
	}
}

// TestGeneratedTokens: without configured tokens, the server creates an
// API token and an enrollment token in the data dir, and they work.
func TestGeneratedTokens(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir, mod: func(c *config.Config) {
		c.API.Tokens, c.API.ReadOnlyTokens, c.Agent.Tokens = nil, nil, nil
	}})
	tok, _, created, err := config.GeneratedToken(dir, config.TokenFile, "x")
	if err != nil || created {
		t.Fatalf("api token file: %v created=%v", err, created)
	}
	agentTok, _, created, err := config.GeneratedToken(dir, config.AgentTokenFile, "x")
	if err != nil || created {
		t.Fatalf("agent token file: %v created=%v", err, created)
	}
	ts.token = tok.Secret
	if e := ts.do("GET", "/api/agents", tok.Secret, nil); e.status != 200 {
		t.Errorf("generated token: %d %s", e.status, e.Msg)
	}
	if e := ts.do("GET", "/api/agents", opToken, nil); e.status != 401 {
		t.Errorf("unconfigured token accepted: %d", e.status)
	}
	startAgent(t, ts.addr, agentSpec{id: "gen", token: agentTok.Secret})
	ts.waitOnline("gen")
}

// TestShutdownAnswersInFlight: a request pending at an agent when the server
// shuts down gets an answer, not a reset connection.
func TestShutdownAnswersInFlight(t *testing.T) {
	ts := startServer(t, serverSpec{})
	ag := startAgent(t, ts.addr, agentSpec{id: "busy", block: true})
	ts.waitOnline("busy")
	res := make(chan envelope, 1)
	go func() { res <- ts.do("GET", "/api/foo/busy?timeout=30", opToken, nil) }()
	select {
	case <-ag.fooIn:
	case <-time.After(30 * time.Second):
		t.Fatal("foo never reached the agent")
	}
	ts.stop()
	e := <-res
	if e.status != 410 && e.status != 503 {
		t.Errorf("in-flight request at shutdown: %d %q", e.status, e.Msg)
	}
}
