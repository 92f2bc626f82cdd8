// Package servertest runs the real agent-server binary for the end-to-end
// tests of the agents and the CLI (exec-agent/e2e, metrics-agent/e2e,
// agentctl/e2e) and for the log collection benchmark (e2e/logbench): one
// way to build or locate the binary, write its config (a temporary folder,
// a free port on 127.0.0.1, the test tokens), start it, wait until it
// answers /healthz, show its log when a test fails, and stop, kill or
// restart it. Release builds signed release binaries (.ci/release) for the
// self-update tests of the server and of agentctl.
//
// It imports nothing of the server (only the standard library and
// jkframe), so that a module requiring it for its tests does not link the
// server in. agent-server's own e2e tests run the server in-process
// instead (they reach into its store and hub) and share the tokens below.
//
// A Server is used by one test goroutine at a time.
package servertest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// The tokens of a test server, and the names the audit trail shows for
// them.
const (
	OperatorToken = "e2e-operator-token-0123456789"
	ReadOnlyToken = "e2e-readonly-token-0123456789"
	AgentToken    = "e2e-agent-token-0123456789"

	OperatorName   = "ops"
	ReadOnlyName   = "grafana"
	AgentTokenName = "fleet"
)

// BinEnv names a folder of prebuilt binaries (agent-server, exec-agent, …):
// Build uses the one there instead of compiling it.
const BinEnv = "AGENTFLEET_E2E_BIN"

// StopTimeout is how long Stop waits after SIGTERM before it kills.
const StopTimeout = 20 * time.Second

// Build returns the path of the binary of module, a folder at the root of
// the repository ("agent-server", "exec-agent", …): $AGENTFLEET_E2E_BIN/module
// when that file exists, otherwise module compiled into dir (CGO off).
// With build tags (say "logbench") it always compiles, with -tags: the
// prebuilt binaries are built without them.
func Build(dir, module string, tags ...string) (string, error) {
	if pre := os.Getenv(BinEnv); pre != "" && len(tags) == 0 {
		bin := filepath.Join(pre, module)
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, module)
	var out []byte
	for range 2 { // the shared build cache of a busy machine fails now and then: once more
		args := []string{"build", "-o", bin}
		if len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir, cmd.Env = filepath.Join(root, module), append(os.Environ(), "CGO_ENABLED=0")
		if out, err = cmd.CombinedOutput(); err == nil {
			return bin, nil
		}
	}
	return "", fmt.Errorf("go build %s: %v\n%s", module, err, out)
}

// Binary names a module to Build and where BuildAll puts its path.
type Binary struct {
	Module string
	Path   *string
}

// BuildAll builds each of bins into dir (see Build), in order, and sets its
// Path; it stops at the first error.
func BuildAll(dir string, bins ...Binary) error {
	for _, b := range bins {
		p, err := Build(dir, b.Module)
		if err != nil {
			return err
		}
		*b.Path = p
	}
	return nil
}

// repoRoot is the folder holding go.work: two up from this file's folder,
// or the workspace go names when the sources are not where they were built.
func repoRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if _, err := os.Stat(filepath.Join(root, "go.work")); err == nil {
			return root, nil
		}
	}
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if w := strings.TrimSpace(string(out)); err == nil && w != "" && w != "off" {
		return filepath.Dir(w), nil
	}
	return "", errors.New("servertest: cannot find the repository (no go.work)")
}

// Options configure a server.
type Options struct {
	// Binary is the agent-server to run (see Build).
	Binary string
	// Dir holds server.conf and the data, cache and log folders; it is
	// kept across Restart. Start uses a t.TempDir() when empty; Launch
	// requires it.
	Dir string
	// Port to listen on, on 127.0.0.1; 0 = a free one.
	Port int
	// LogLevel of the server; "" = debug (a failing test wants the detail).
	LogLevel string
	// LogFile receives the server's stdout and stderr (appended, so across
	// restarts too); "" = Dir/server.log.
	LogFile string
	// Conf sets server.conf keys over the defaults (see Conf), or adds
	// them; an empty value removes a default.
	Conf map[string]string
	// Ready is how long the server may take to answer /healthz; 0 =
	// eventually.DefaultTimeout.
	Ready time.Duration
	// Env is added to (and overrides) the test's environment for the
	// server process.
	Env []string
}

// Server is a running (or stopped) agent-server process.
type Server struct {
	Port     int
	Addr     string // 127.0.0.1:Port
	URL      string // http://Addr
	Dir      string
	ConfPath string
	LogPath  string

	o    Options
	mu   sync.Mutex
	proc *Proc // the current (or last) process
}

// conf returns the lines of server.conf for o, in a fixed order: the
// defaults (overridden by o.Conf) first, then o.Conf's other keys sorted.
func (o Options) conf(port int) []byte {
	defaults := [][2]string{
		{"id", "e2e"},
		{"listen", fmt.Sprint(port)},
		{"listen_addr", "127.0.0.1"},
		{"data_dir", filepath.Join(o.Dir, "data")},
		{"cache_dir", filepath.Join(o.Dir, "cache")},
		{"cache_threshold", "99"},
		{"log_dir", filepath.Join(o.Dir, "logs")},
		{"log_target", "stdout"},
		{"log_level", o.LogLevel},
		{"api.tokens", OperatorName + ":" + OperatorToken},
		{"api.read_only_tokens", ReadOnlyName + ":" + ReadOnlyToken},
		{"api.rate_limit", "0"},
		{"api.upload_max_body", "1G"},
		{"agent.tokens", AgentTokenName + ":" + AgentToken},
		{"connect_limit", "0"},
	}
	var b strings.Builder
	seen := map[string]bool{}
	for _, kv := range defaults {
		v := kv[1]
		if over, ok := o.Conf[kv[0]]; ok {
			v = over
		}
		seen[kv[0]] = true
		if v != "" {
			fmt.Fprintf(&b, "%s = %s\n", kv[0], v)
		}
	}
	var extra []string
	for k := range o.Conf {
		if !seen[k] && o.Conf[k] != "" {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		fmt.Fprintf(&b, "%s = %s\n", k, o.Conf[k])
	}
	return []byte(b.String())
}

// Launch writes the config, starts the server and waits until it answers
// /healthz. On error the process is not left running. The caller stops it.
func Launch(o Options) (*Server, error) {
	if o.Binary == "" || o.Dir == "" {
		return nil, errors.New("servertest: Options.Binary and Options.Dir are required")
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	port := o.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	s := &Server{Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: o.Dir, o: o,
		ConfPath: filepath.Join(o.Dir, "server.conf"), LogPath: o.LogFile}
	s.URL = "http://" + s.Addr
	if s.LogPath == "" {
		s.LogPath = filepath.Join(o.Dir, "server.log")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.ConfPath, o.conf(port), 0o644); err != nil {
		return nil, err
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start is Launch for a test: Dir defaults to a t.TempDir(), the server
// stops at the end of the test, and the end of its log is logged when the
// test failed. Errors fail the test at once.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := Launch(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("agent-server log (%s, tail):\n%s", s.LogPath, s.Tail(8000))
		}
	})
	return s
}

// start runs the binary and waits for /healthz.
func (s *Server) start() error {
	p, err := StartProc(ProcOptions{Name: "agent-server", Args: []string{s.o.Binary, "--conf", s.ConfPath, "run"},
		Dir: s.Dir, Env: s.o.Env, Log: s.LogPath})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	exited := false
	err = eventually.Poll{Timeout: s.o.Ready}.Wait("agent-server /healthz", func() error {
		if !p.Running() {
			exited = true
			return nil // stop polling
		}
		resp, err := client.Get(s.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if exited {
		err = fmt.Errorf("agent-server exited (%v) before it was ready", p.Cmd.ProcessState)
	}
	if err != nil {
		p.Kill()
		return fmt.Errorf("%w\nlog (tail):\n%s", err, s.Tail(4000))
	}
	return nil
}

// current returns the current (or last) process; nil before the first.
func (s *Server) current() *Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Running reports whether the process runs.
func (s *Server) Running() bool {
	p := s.current()
	return p != nil && p.Running()
}

// PID is the process id of the current (or last) process.
func (s *Server) PID() int { return s.current().PID() }

// Stop sends SIGTERM and waits for the exit; after StopTimeout it kills
// the process and says so in its error. A stopped server is left as is.
func (s *Server) Stop() error {
	if p := s.current(); p != nil {
		return p.Stop(syscall.SIGTERM)
	}
	return nil
}

// Kill kills the process (SIGKILL) and waits for it.
func (s *Server) Kill() {
	if p := s.current(); p != nil {
		p.Kill()
	}
}

// Restart starts the server again, after Stop or Kill, with the same
// folder, port and config, and waits until it is ready.
func (s *Server) Restart() error {
	if s.Running() {
		return errors.New("servertest: Restart of a running server")
	}
	return s.start()
}

// Tail returns the last n bytes of the server's log.
func (s *Server) Tail(n int) string {
	b, _ := os.ReadFile(s.LogPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// FreePort returns a port nobody listens on now on 127.0.0.1.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
