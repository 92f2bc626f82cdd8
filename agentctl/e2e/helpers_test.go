//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/syncbuf"

	"github.com/agentfleet/agent-server/servertest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Tokens of the test server (servertest's).
const (
	opToken    = servertest.OperatorToken
	roToken    = servertest.ReadOnlyToken
	agentToken = servertest.AgentToken
)

// The exec-agents of the shared fleet and their labels; each runs with
// E2E_AGENT=<its id> in its environment, so that commands can tell them
// apart.
var execAgents = []struct{ id, labels string }{
	{"e2e-a1", "e2e=yes,role=web"},
	{"e2e-a2", "e2e=yes,role=web"},
	{"e2e-a3", "e2e=yes,role=db"},
}

const metricsAgent = "e2e-m1"

// bins are the binaries, built once.
var bins struct{ dir, server, exec, metrics, log, ctl string }

// fleet is the shared environment: one server, three exec-agents and a
// metrics-agent, started once for the package.
var fleet *env

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		dir, err := os.MkdirTemp("", "agentctl-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fleet, err = startEnv(filepath.Join(dir, "fleet"), envOptions{agents: len(execAgents), metrics: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start the fleet:", err)
			if fleet != nil {
				fleet.dumpLogs(os.Stderr)
				fleet.stop()
			}
			return 1
		}
		code := m.Run()
		if code != 0 {
			fleet.dumpLogs(os.Stderr)
		}
		fleet.stop()
		return code
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// build compiles (or finds, see servertest.Build) the server, the agents
// and agentctl into dir.
func build(dir string) error {
	bins.dir = dir
	return servertest.BuildAll(dir, servertest.Binary{Module: "agent-server", Path: &bins.server},
		servertest.Binary{Module: "exec-agent", Path: &bins.exec}, servertest.Binary{Module: "metrics-agent", Path: &bins.metrics},
		servertest.Binary{Module: "log-agent", Path: &bins.log}, servertest.Binary{Module: "agentctl", Path: &bins.ctl})
}

// env is a running server with its agents.
type env struct {
	dir    string
	url    string
	server *servertest.Server
	agents []*servertest.Proc
	ids    []string // exec-agent ids
	client *http.Client
}

type envOptions struct {
	agents    int     // exec-agents, the first of execAgents
	metrics   bool    // and a metrics-agent
	rateLimit float64 // api.rate_limit; 0 = off
}

// startEnv starts a server and its agents in dir and waits until every
// agent is online.
func startEnv(dir string, o envOptions) (*env, error) {
	e := &env{dir: dir, client: &http.Client{Timeout: 30 * time.Second}}
	conf := map[string]string{}
	if o.rateLimit > 0 {
		conf["api.rate_limit"], conf["api.rate_burst"] = fmt.Sprintf("%g", o.rateLimit), "1"
	}
	var err error
	e.server, err = servertest.Launch(servertest.Options{Binary: bins.server, Dir: filepath.Join(dir, "server"),
		LogFile: filepath.Join(dir, "server.log"), LogLevel: "info", Conf: conf})
	if err != nil {
		return e, err
	}
	e.url = e.server.URL
	start := func(name, bin, id, labels, extra string) error {
		adir := filepath.Join(dir, id)
		if err := os.MkdirAll(filepath.Join(adir, "conf"), 0o755); err != nil {
			return err
		}
		c := fmt.Sprintf(`basic.id = %s
basic.server = %s
basic.token = %s
basic.labels = %s
basic.log.target = stdout,file
basic.log.dir = %s/logs
basic.log.level = info
basic.monitor.enabled = false
%s`, id, e.server.Addr, agentToken, labels, adir, extra)
		cp := filepath.Join(adir, "conf", "agent.conf")
		if err := os.WriteFile(cp, []byte(c), 0o644); err != nil {
			return err
		}
		p, err := servertest.StartProc(servertest.ProcOptions{Name: id, Args: []string{bin, "--conf", cp, "run"},
			Env: []string{"E2E_AGENT=" + id}, Log: filepath.Join(dir, id+".log")})
		if err != nil {
			return err
		}
		e.agents = append(e.agents, p)
		return nil
	}
	want := []string{}
	for _, a := range execAgents[:o.agents] {
		if err := start("exec-agent", bins.exec, a.id, a.labels, "exec.kill_grace = 500ms\n"); err != nil {
			return e, err
		}
		e.ids = append(e.ids, a.id)
		want = append(want, a.id)
	}
	if o.metrics {
		if err := start("metrics-agent", bins.metrics, metricsAgent, "e2e=metrics", "task.usage.interval = 1s\n"); err != nil {
			return e, err
		}
		want = append(want, metricsAgent)
	}
	err = eventually.WaitTrue(60*time.Second, "agents online", func() bool {
		online := e.online()
		for _, id := range want {
			if !online[id] {
				return false
			}
		}
		return true
	})
	return e, err
}

// online returns the ids of the connected agents.
func (e *env) online() map[string]bool {
	var list []struct {
		ID string `json:"id"`
	}
	if err := e.api("GET", "/api/agents?online=true&size=1000", nil, &list); err != nil {
		return nil
	}
	m := map[string]bool{}
	for _, a := range list {
		m[a.ID] = true
	}
	return m
}

func (e *env) stop() {
	for i := len(e.agents) - 1; i >= 0; i-- {
		_ = e.agents[i].Stop(syscall.SIGTERM)
	}
	if e.server != nil {
		if err := e.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	e.client.CloseIdleConnections()
}

func (e *env) dumpLogs(w io.Writer) {
	if e.server != nil {
		fmt.Fprintf(w, "--- server log (tail):\n%s\n", e.server.Tail(8000))
	}
	for _, a := range e.agents {
		fmt.Fprintf(w, "--- %s log (tail):\n%s\n", a.Name, a.Tail(3000))
	}
}

// api calls the server directly (checks of what agentctl did) and decodes
// the payload into out.
func (e *env) api(method, path string, body any, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var env struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(env.Payload, out)
	}
	return nil
}

// result is what one agentctl run gave.
type result struct {
	out, err string
	code     int
}

// ctlOpts tune one agentctl run.
type ctlOpts struct {
	env   []string // added to (and overriding) the defaults
	stdin io.Reader
	dir   string
}

// baseEnv is agentctl's environment for e: server and token from the
// environment, a config file of the test's own.
func (e *env) baseEnv(t *testing.T) []string {
	return []string{
		"AGENTCTL_SERVER=" + e.url, "AGENTCTL_TOKEN=" + opToken,
		"AGENTCTL_CONFIG=" + filepath.Join(t.TempDir(), "config.yaml"),
		"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "TERM=dumb",
	}
}

// ctl runs agentctl against e and waits for it (at most 5 minutes).
func (e *env) ctl(t *testing.T, o ctlOpts, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.ctl, args...)
	cmd.Env = mergeEnv(e.baseEnv(t), o.env)
	cmd.Stdin, cmd.Dir = o.stdin, o.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("agentctl %s: %v", strings.Join(args, " "), err)
	}
	if testing.Verbose() {
		t.Logf("agentctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, clip(out.String()), clip(errb.String()))
	}
	return result{out: out.String(), err: errb.String(), code: code}
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:1500] + "\n[...]\n" + s[len(s)-1500:]
	}
	return s
}

// mergeEnv sets over's variables in base (an empty value unsets).
func mergeEnv(base, over []string) []string {
	m := map[string]string{}
	for _, kv := range append(slices.Clone(base), over...) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	var out []string
	for k, v := range m {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// ok runs agentctl and fails the test unless it exits 0.
func (e *env) ok(t *testing.T, args ...string) result {
	t.Helper()
	r := e.ctl(t, ctlOpts{}, args...)
	if r.code != 0 {
		t.Fatalf("agentctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, clip(r.out), clip(r.err))
	}
	return r
}

// opaque are the keys whose values are free-form (label maps, the
// server's stored request, audit details, a log node's counters): their shape is "object".
var opaque = map[string]bool{"labels": true, "request": true, "detail": true, "stats": true}

// shape reduces a JSON document to its structure: objects keep their keys
// (sorted) with the shapes of their values, arrays the shape of their
// first element, and values become their type's name.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if _, isObj := val.(map[string]any); isObj && opaque[k] {
				out[k] = "object"
				continue
			}
			out[k] = shape(val)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		return []any{shape(x[0])}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// checkShape compares the shape of a JSON output with
// testdata/json/<name>.json (go test -update rewrites it).
func checkShape(t *testing.T, name, doc string) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", name, err, clip(doc))
	}
	got, _ := json.MarshalIndent(shape(v), "", "  ")
	got = append(got, '\n')
	golden := filepath.Join("testdata", "json", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -tags ... -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("shape of %s changed (the -o json output is a documented interface; update docs/cli.md and run with -update):\n got %s\nwant %s", name, got, want)
	}
}

// started runs agentctl in the background; wait collects its result.
type started struct {
	cmd      *exec.Cmd
	out, err *syncbuf.Buffer
	done     chan struct{}
	code     int
}

func (e *env) start(t *testing.T, o ctlOpts, args ...string) *started {
	t.Helper()
	cmd := exec.Command(bins.ctl, args...)
	cmd.Env = mergeEnv(e.baseEnv(t), o.env)
	cmd.Stdin = o.stdin
	s := &started{cmd: cmd, out: &syncbuf.Buffer{}, err: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.out, s.err
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		s.code = cmd.ProcessState.ExitCode()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

func (s *started) wait(t *testing.T, d time.Duration) result {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		t.Fatalf("agentctl %s did not end within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(s.cmd.Args[1:], " "), d, clip(s.out.String()), clip(s.err.String()))
	}
	return result{out: s.out.String(), err: s.err.String(), code: s.code}
}
