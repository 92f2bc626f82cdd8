// Package e2e runs the real metrics-agent binary against the real
// agent-server binary, both built into a temporary directory by TestMain,
// and checks every /api/metrics route and /metrics/hosts from the outside.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/agent-server/servertest"

	"github.com/agentfleet/jkframe/eventually"
)

// Tokens of the test server (servertest's).
const (
	opToken    = servertest.OperatorToken
	agentToken = servertest.AgentToken
)

// bins are the binaries TestMain built.
var bins struct{ server, agent string }

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "metrics-agent-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := servertest.BuildAll(dir, servertest.Binary{Module: "agent-server", Path: &bins.server},
			servertest.Binary{Module: "metrics-agent", Path: &bins.agent}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
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

// startProc runs bin in dir with its output in dir/<bin>.out until the end
// of the test (SIGTERM, then SIGKILL after servertest.StopTimeout, an error
// of the test).
func startProc(t testing.TB, dir, bin string, args ...string) *servertest.Proc {
	t.Helper()
	p, err := servertest.StartProc(servertest.ProcOptions{Args: append([]string{bin}, args...), Dir: dir,
		Log: filepath.Join(dir, filepath.Base(bin)+".out")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
	})
	return p
}

type server struct {
	*servertest.Server
	addr   string
	client *http.Client
}

// startServer runs agent-server in a fresh directory, with conf set over
// servertest's defaults.
func startServer(t testing.TB, conf map[string]string) *server {
	t.Helper()
	o := servertest.Options{Binary: bins.server, Conf: map[string]string{"hostmetrics.flush_interval": "100ms"}}
	maps.Copy(o.Conf, conf)
	ss := servertest.Start(t, o)
	s := &server{Server: ss, addr: ss.Addr, client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

type agentProc struct {
	*servertest.Proc
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
	return &agentProc{Proc: startProc(t, dir, bins.agent, "run", "--conf", path), dir: dir, conf: path}
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
	eventually.Within(t, 30*time.Second, "a metrics-agent online", func() bool {
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
