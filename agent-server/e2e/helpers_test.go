// Package e2e runs the real agent-server in-process (on 127.0.0.1, a
// temporary data dir, SQLite or MariaDB) against real libagent agents and
// checks the HTTP API from the outside.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/jkframe/mysqlschema/mysqltest"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/logging"
	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/internal/shell"
	"github.com/agentfleet/agent-server/internal/testserver"
	"github.com/agentfleet/agent-server/servertest"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clientTimeout bounds each API call of the tests. A sync run may take the
// server its timeout + 5 s (plus a legacy agent's late data) to answer: on 2
// busy cores with -race a 60 s run of seq 1 200000 took longer than the old
// 20 s (make stress), so this is above the longest wait the tests ask for.
const clientTimeout = 90 * time.Second

// Tokens of the test servers: servertest's, which the e2e tests of the
// other modules use with the server binary.
const (
	opToken    = servertest.OperatorToken
	roToken    = servertest.ReadOnlyToken
	agentToken = servertest.AgentToken
)

type testServer struct {
	t       *testing.T
	srv     *server.Server
	running *testserver.Server
	url     string
	addr    string
	client  *http.Client
	token   string // used by get
}

type serverSpec struct {
	dataDir string
	addr    string // "" = a free port
	mysql   string // DSN with database; "" = SQLite
	mod     func(*config.Config)
	shell   func(*shell.Options)
	exec    func(*execsvc.Options)
	logging func(*logging.Options)
	// deadAfter replaces the hub's 15 s dead-peer timeout (agent binaries
	// ping every 10 s).
	deadAfter time.Duration
	// log, when set, receives the server's log (debug level), for tests
	// that read it.
	log io.Writer
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// startServer runs a server until stop (or the end of the test).
func startServer(t *testing.T, spec serverSpec) *testServer {
	t.Helper()
	if spec.dataDir == "" {
		spec.dataDir = t.TempDir()
	}
	cfg := testserver.Config("e2e", spec.dataDir)
	if spec.addr != "" {
		_, port, _ := net.SplitHostPort(spec.addr)
		p, _ := strconv.Atoi(port)
		cfg.Listen = uint16(p)
	}
	if spec.mysql != "" {
		cfg.Store.Driver, cfg.Store.DSN = "mysql", spec.mysql
	}
	if spec.mod != nil {
		spec.mod(&cfg)
	}
	log := logger(t)
	if spec.log != nil {
		w := spec.log
		if testing.Verbose() {
			w = io.MultiWriter(w, os.Stderr)
		}
		log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	run := testserver.Start(t, cfg, server.Options{
		Logger: log, Version: "9.9.9-e2e", ShutdownTimeout: 5 * time.Second, TouchInterval: 100 * time.Millisecond,
		// Agents ping every 2 s (KeepAlive below): a starved machine can
		// hold a frame for seconds, and an evicted agent fails the test
		// that was using it. Tests of eviction set their own (deadAfter).
		Hub: func(o *hub.Options) {
			o.DeadAfter = 15 * time.Second
			if spec.deadAfter > 0 {
				o.DeadAfter = spec.deadAfter
			}
		},
		Shell: spec.shell, Exec: spec.exec, Logging: spec.logging,
	})
	return newTestServer(t, run, clientTimeout)
}

// newTestServer is the test's view of run, with a client whose calls time
// out after timeout; it stops at the end of the test.
func newTestServer(t *testing.T, run *testserver.Server, timeout time.Duration) *testServer {
	ts := &testServer{t: t, srv: run.Server, running: run, addr: run.Addr(), url: run.URL,
		client: &http.Client{Timeout: timeout, Transport: &http.Transport{}}, token: opToken}
	t.Cleanup(ts.stop)
	return ts
}

// stop shuts the server down and waits for it; calling it again does nothing.
func (ts *testServer) stop() {
	if err := ts.running.Stop(); err != nil {
		ts.t.Error(err)
	}
	ts.client.CloseIdleConnections()
}

type envelope struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	ReqID   string          `json:"reqid"`
	Payload json.RawMessage `json:"payload"`
	status  int
	header  http.Header
	body    []byte
}

// do sends a request with token (none when "") and decodes the envelope
// (body kept raw when it is not one).
func (ts *testServer) do(method, path, token string, body io.Reader) envelope {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	e := envelope{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && strings.HasPrefix(string(b), `{"code"`) {
		if err := json.Unmarshal(b, &e); err != nil {
			ts.t.Fatalf("%s %s: bad envelope %q: %v", method, path, b, err)
		}
		if e.Code != resp.StatusCode {
			ts.t.Errorf("%s %s: code %d != HTTP status %d", method, path, e.Code, resp.StatusCode)
		}
	}
	return e
}

func (ts *testServer) get(path string) envelope {
	ts.t.Helper()
	return ts.do("GET", path, ts.token, nil)
}

type apiAgent struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Version     string            `json:"version"`
	IP          string            `json:"ip"`
	OS          string            `json:"os"`
	IsOnline    bool              `json:"is_online"`
	HostName    string            `json:"host_name"`
	Labels      map[string]string `json:"labels"`
	LastSeen    time.Time         `json:"last_seen"`
	ConnectedAt time.Time         `json:"connected_at"`
}

func (ts *testServer) agents(query string) []apiAgent {
	ts.t.Helper()
	e := ts.get("/api/agents?" + query)
	if e.status != 200 {
		ts.t.Fatalf("list agents: %d %s", e.status, e.Msg)
	}
	var out []apiAgent
	if err := json.Unmarshal(e.Payload, &out); err != nil {
		ts.t.Fatal(err)
	}
	return out
}

// waitOnline waits until agent id is listed online.
func (ts *testServer) waitOnline(id string) {
	ts.t.Helper()
	ts.waitListed(id, "online")
}

// waitOffline waits until agent id is listed offline.
func (ts *testServer) waitOffline(id string) {
	ts.t.Helper()
	ts.waitListed(id, "offline")
}

func (ts *testServer) waitListed(id, state string) {
	ts.t.Helper()
	query := "online=" + strconv.FormatBool(state == "online") + "&size=1000"
	eventually.Within(ts.t, 30*time.Second, "agent "+id+" "+state, func() bool {
		return slices.ContainsFunc(ts.agents(query), func(a apiAgent) bool { return a.ID == id })
	})
}

// testAgent is a real libagent agent.
type testAgent struct {
	id     string
	cancel context.CancelFunc
	done   chan error
	fooIn  chan struct{} // receives when a blocking foo arrived
}

type agentSpec struct {
	name    string // agent type; default example-agent
	id      string
	token   string // default agentToken
	labels  []string
	monitor time.Duration // self-report interval; 0 = off
	block   bool          // foo blocks until the agent stops
	setup   func(rt *libagent.Runtime)
	state   string           // state file; default a new one
	backoff *backoff.Backoff // reconnect waits; default 10-100 ms
	tlsCA   string           // basic.tls.ca, for a wss:// server
}

type agentConf struct {
	Basic libagent.Basic `kv:"basic"`
}

// startAgent runs an agent against addr until the end of the test (or stop).
func startAgent(t *testing.T, addr string, spec agentSpec) *testAgent {
	t.Helper()
	if spec.name == "" {
		spec.name = "example-agent"
	}
	if spec.token == "" {
		spec.token = agentToken
	}
	b := libagent.DefaultBasic()
	b.ID, b.Server, b.Token, b.Labels = spec.id, addr, spec.token, spec.labels
	b.TLS.CA = spec.tlsCA
	b.Monitor.Enabled = spec.monitor > 0
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{id: spec.id, cancel: cancel, done: make(chan error, 1), fooIn: make(chan struct{}, 4)}
	a := &libagent.Agent{
		Name: spec.name, Version: "1.2.3", Config: &agentConf{Basic: b},
		Setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				if spec.block {
					ta.fooIn <- struct{}{}
					<-ctx.Done()
					return ctx.Err()
				}
				return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeBar})
			})
			if spec.setup != nil {
				spec.setup(rt)
			}
			return nil
		},
	}
	if spec.state == "" {
		spec.state = filepath.Join(t.TempDir(), "agent.state")
	}
	if spec.backoff == nil {
		spec.backoff = &backoff.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	o := libagent.Options{
		StatePath: spec.state, Logger: logger(t).With("agent", spec.id),
		KeepAlive: 2 * time.Second, Backoff: spec.backoff,
		MonitorInterval: spec.monitor, SkipLimits: true,
	}
	go func() { ta.done <- libagent.Run(ctx, a, o) }()
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

func (ta *testAgent) stop(t *testing.T) {
	if ta.cancel == nil {
		return
	}
	ta.cancel()
	ta.cancel = nil
	select {
	case err := <-ta.done:
		if err != nil {
			t.Errorf("agent %s: %v", ta.id, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("agent %s did not stop", ta.id)
	}
}

// newProxy forwards to target until the end of the test.
func newProxy(t *testing.T, target string) *servertest.Proxy {
	t.Helper()
	p, err := servertest.NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// freeAddr returns a 127.0.0.1 address with a port free now (for a server
// whose address must be known before it starts).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// mysqlDSN returns the DSN of a fresh MariaDB database (skips when there is
// no server, unless CI requires it).
func mysqlDSN(t *testing.T) string {
	db := mysqltest.Open(t)
	var name string
	if err := db.QueryRow("SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return mysqltest.DSN(t) + name
}
