// Package e2e runs the real metrics-agent binary against the real
// agent-server binary, both built into a temporary directory by TestMain,
// and checks every /api/metrics route and /metrics/hosts from the outside.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Tokens of the test server.
const (
	opToken    = "operator-token-0123456789"
	agentToken = "agent-token-0123456789abc"
)

// binDir holds the binaries TestMain built.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "metrics-agent-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		for _, b := range []struct{ name, src string }{
			{"agent-server", filepath.Join("..", "..", "agent-server")},
			{"metrics-agent", ".."},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.name), ".")
			cmd.Dir = b.src
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.name, err, out)
				return 1
			}
		}
		code := m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				return 1
			}
		}
		return code
	}())
}

// proc is a started binary; its output goes to a file in the test's dir.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  string
	done chan error
}

func startProc(t testing.TB, dir, bin string, args ...string) *proc {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(bin)+".out")
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM and waits (SIGKILL after 15 s); a second call does
// nothing.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("%s did not stop within 15 s of SIGTERM", p.cmd.Path)
	}
	p.cmd = nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) output() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type server struct {
	*proc
	addr   string
	client *http.Client
}

// startServer runs agent-server on a free port with SQLite in dir.
func startServer(t testing.TB, extra string) *server {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`id = e2e
listen = %d
listen_addr = 127.0.0.1
data_dir = data
cache_dir = cache
log_dir = logs
log_target = stdout
log_level = debug
connect_limit = 0
api.tokens = ops:%s
agent.tokens = fleet:%s
hostmetrics.flush_interval = 100ms
%s`, port, opToken, agentToken, extra)
	path := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &server{proc: startProc(t, dir, filepath.Join(binDir, "agent-server"), "run", "--conf", path),
		addr: fmt.Sprintf("127.0.0.1:%d", port), client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
	t.Cleanup(s.client.CloseIdleConnections)
	eventually(t, 30*time.Second, "agent-server /healthz", func() bool {
		resp, err := s.client.Get("http://" + s.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

type agentProc struct {
	*proc
	dir, conf string
}

// startAgent runs metrics-agent in dir (a fresh one when "") with the
// config lines given after the basic ones.
func startAgent(t testing.TB, s *server, dir, extra string) *agentProc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	confDir := filepath.Join(dir, "conf")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(confDir, "agent.conf")
	if _, err := os.Stat(path); err != nil {
		conf := fmt.Sprintf("basic.server = %s\nbasic.token = %s\nbasic.log.target = stdout\n%s", s.addr, agentToken, extra)
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &agentProc{proc: startProc(t, dir, filepath.Join(binDir, "metrics-agent"), "run", "--conf", path), dir: dir, conf: path}
}

// envelope is the API's answer.
type envelope struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	Payload json.RawMessage `json:"payload"`
	status  int
	header  http.Header
	body    []byte
}

func (s *server) do(t testing.TB, method, path string, body any) envelope {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+opToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	e := envelope{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: bad envelope %q: %v", method, path, b, err)
		}
	}
	return e
}

// ok calls the route, expects 200 and decodes the payload into v.
func (s *server) ok(t testing.TB, method, path string, body, v any) envelope {
	t.Helper()
	e := s.do(t, method, path, body)
	if e.status != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, path, e.status, e.body)
	}
	if v != nil {
		if err := json.Unmarshal(e.Payload, v); err != nil {
			t.Fatalf("%s %s: payload %s: %v", method, path, e.Payload, err)
		}
	}
	return e
}

// agentID waits until a metrics-agent is online and returns its id.
func (s *server) agentID(t testing.TB) string {
	t.Helper()
	var id string
	eventually(t, 30*time.Second, "a metrics-agent online", func() bool {
		var list []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			IsOnline bool   `json:"is_online"`
		}
		e := s.do(t, "GET", "/api/agents?type=metrics-agent", nil)
		if e.status != 200 || json.Unmarshal(e.Payload, &list) != nil {
			return false
		}
		for _, a := range list {
			if a.IsOnline && a.Type == "metrics-agent" {
				id = a.ID
				return true
			}
		}
		return false
	})
	return id
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
