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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/mysqlschema/mysqltest"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/backoff"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/internal/shell"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Tokens of the test servers.
const (
	opToken    = "operator-token-0123456789"
	roToken    = "readonly-token-0123456789"
	agentToken = "agent-token-0123456789abc"
)

type testServer struct {
	t      *testing.T
	srv    *server.Server
	url    string
	addr   string
	cancel context.CancelFunc
	done   chan error
	client *http.Client
	token  string // used by get
}

type serverSpec struct {
	dataDir string
	addr    string // "" = a free port
	mysql   string // DSN with database; "" = SQLite
	mod     func(*config.Config)
	shell   func(*shell.Options)
	exec    func(*execsvc.Options)
	// deadAfter replaces the hub's 15 s dead-peer timeout (agent binaries
	// ping every 10 s).
	deadAfter time.Duration
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
	cfg := config.Default()
	cfg.ID = "e2e"
	cfg.Listen = 0
	if spec.addr != "" {
		_, port, _ := net.SplitHostPort(spec.addr)
		p, _ := strconv.Atoi(port)
		cfg.Listen = uint16(p)
	}
	if spec.dataDir == "" {
		spec.dataDir = t.TempDir()
	}
	cfg.DataDir = spec.dataDir
	cfg.CacheDir = filepath.Join(spec.dataDir, "cache")
	cfg.LogDir = filepath.Join(spec.dataDir, "logs")
	cfg.API.Tokens = []string{"ops:" + opToken}
	cfg.API.ReadOnlyTokens = []string{"grafana:" + roToken}
	cfg.Agent.Tokens = []string{"fleet:" + agentToken}
	cfg.ConnectLimit = 0
	if spec.mysql != "" {
		cfg.Store.Driver, cfg.Store.DSN = "mysql", spec.mysql
	}
	if spec.mod != nil {
		spec.mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, server.Options{
		Logger: logger(t), Version: "9.9.9-e2e", ShutdownTimeout: 5 * time.Second, TouchInterval: 100 * time.Millisecond,
		// Agents ping every 2 s (KeepAlive below): a starved machine can
		// hold a frame for seconds, and an evicted agent fails the test
		// that was using it. Tests of eviction set their own (deadAfter).
		Hub: func(o *hub.Options) {
			o.DeadAfter = 15 * time.Second
			if spec.deadAfter > 0 {
				o.DeadAfter = spec.deadAfter
			}
		},
		Shell: spec.shell, Exec: spec.exec,
	})
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	ts := &testServer{t: t, srv: srv, addr: srv.Addr(), url: "http://" + srv.Addr(), cancel: cancel, done: make(chan error, 1),
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{}}, token: opToken}
	go func() { ts.done <- srv.Run(ctx) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop shuts the server down and waits for it; calling it again does nothing.
func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	select {
	case err := <-ts.done:
		if err != nil {
			ts.t.Errorf("server Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		ts.t.Error("server did not stop within 15 s")
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

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	eventually(ts.t, 30*time.Second, "agent "+id+" online", func() bool {
		for _, a := range ts.agents("online=true&size=1000") {
			if a.ID == id {
				return true
			}
		}
		return false
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
	o := libagent.Options{
		StatePath: filepath.Join(t.TempDir(), "agent.state"), Logger: logger(t).With("agent", spec.id),
		KeepAlive: 2 * time.Second, Backoff: &backoff.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
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

// proxy forwards TCP connections to target until cut.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(u, c); _ = u.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, u); _ = c.Close() })
	}
}

// cut closes every forwarded connection (the listener stays).
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.cut()
	p.wg.Wait()
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
