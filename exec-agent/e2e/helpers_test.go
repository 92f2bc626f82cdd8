//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/servertest"
)

// The test server's tokens (servertest's).
const (
	apiToken      = servertest.OperatorToken
	readOnlyToken = servertest.ReadOnlyToken
	agentToken    = servertest.AgentToken
)

const agentID = "e2e-exec-agent"

// Binaries built once for the package.
var bins struct {
	dir, server, agent string
}

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "exec-agent-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bins.dir = dir
		if err := servertest.BuildAll(dir, servertest.Binary{Module: "agent-server", Path: &bins.server},
			servertest.Binary{Module: "exec-agent", Path: &bins.agent}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startProc starts args with its output in logPath.
func startProc(t testing.TB, name, logPath string, args ...string) *servertest.Proc {
	t.Helper()
	p, err := servertest.StartProc(servertest.ProcOptions{Name: name, Args: args, Log: logPath})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stop sends sig to p and waits for the exit (SIGKILL after
// servertest.StopTimeout, an error of the test).
func stop(t testing.TB, p *servertest.Proc, sig syscall.Signal) {
	t.Helper()
	if err := p.Stop(sig); err != nil {
		t.Error(err)
	}
}

// env is a server, a proxy and an exec-agent connected through it.
type env struct {
	t        testing.TB
	dir      string
	port     int
	url      string
	server   *servertest.Server
	agent    *servertest.Proc
	proxy    *servertest.Proxy
	client   *http.Client
	agentID  string
	logLevel string
	// agentDir holds the agent's conf dir, state, journal and task records;
	// agentConf is its config file (restartAgent starts it again).
	agentDir, agentConf string
}

type envOptions struct {
	agentConf string // extra agent.conf lines
	// agentDir holds the agent's conf dir, state and journal; "": a
	// temporary directory.
	agentDir string
	// direct connects the agent to the server without the proxy.
	direct bool
	// logLevel of the server and the agent; "": debug (tests want the
	// detail when they fail; benchmarks measure the default, info).
	logLevel string
	// drainTimeout is the agent's exec.drain_timeout; "": 200ms (the
	// tests' background children), "-": the agent's own default.
	drainTimeout string
	// serverConf sets server.conf keys (servertest.Options.Conf).
	serverConf map[string]string
	// beforeAgent runs before the agent starts, with its directory (its
	// journal is conf/agent.journal there).
	beforeAgent func(agentDir string)
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), agentID: agentID,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	e.logLevel = o.logLevel
	if e.logLevel == "" {
		e.logLevel = "debug"
	}
	// The server's data is in e.dir/server (kept across restarts).
	e.server = servertest.Start(t, servertest.Options{Binary: bins.server, Dir: filepath.Join(e.dir, "server"),
		LogFile: filepath.Join(e.dir, "server.log"), LogLevel: e.logLevel, Conf: o.serverConf})
	e.port, e.url = e.server.Port, e.server.URL
	e.proxy = newProxy(t, e.server.Addr)
	adir := filepath.Join(e.dir, "agent")
	if o.agentDir != "" {
		adir = filepath.Join(o.agentDir, filepath.Base(e.dir))
		t.Cleanup(func() { os.RemoveAll(adir) })
	}
	server := e.proxy.Addr()
	if o.direct {
		server = e.server.Addr
	}
	if err := os.MkdirAll(filepath.Join(adir, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	drain := "exec.drain_timeout = 200ms\n"
	switch o.drainTimeout {
	case "":
	case "-":
		drain = ""
	default:
		drain = "exec.drain_timeout = " + o.drainTimeout + "\n"
	}
	conf := fmt.Sprintf(`basic.id = %s
basic.server = %s
basic.token = %s
basic.log.target = stdout
basic.log.level = %s
basic.monitor.enabled = false
exec.kill_grace = 500ms
%s%s
`, e.agentID, server, agentToken, e.logLevel, drain, o.agentConf)
	confPath := filepath.Join(adir, "conf", "agent.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	e.agentDir, e.agentConf = adir, confPath
	if o.beforeAgent != nil {
		o.beforeAgent(adir)
	}
	e.agent = startProc(t, "exec-agent", filepath.Join(e.dir, "agent.log"), bins.agent, "--conf", confPath, "run")
	t.Cleanup(func() {
		stop(t, e.agent, syscall.SIGTERM)
		e.proxy.Close()
		e.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("agent log:\n%s", e.agent.Tail(6000))
		}
	})
	e.waitOnline()
	return e
}

// restartServer starts the server again (after e.server.Kill or Stop)
// with the same port, config and data.
func (e *env) restartServer() {
	e.t.Helper()
	if err := e.server.Restart(); err != nil {
		e.t.Fatal(err)
	}
}

// restartAgent starts the exec-agent again (after e.agent ended) with the
// same config, state and journal, and waits until it is online.
func (e *env) restartAgent() {
	e.t.Helper()
	e.agent = startProc(e.t, "exec-agent", filepath.Join(e.dir, "agent.log"), bins.agent, "--conf", e.agentConf, "run")
	e.waitOnline()
}

// waitOnline waits until the agent is connected to the server.
func (e *env) waitOnline() {
	e.t.Helper()
	eventually.Within(e.t, 30*time.Second, "exec-agent online", func() bool {
		r := e.api("GET", "/api/agents?online=true&size=1000", nil)
		var list []struct {
			ID       string `json:"id"`
			IsOnline bool   `json:"is_online"`
		}
		_ = json.Unmarshal(r.Payload, &list)
		for _, a := range list {
			if a.ID == e.agentID && a.IsOnline {
				return true
			}
		}
		return false
	})
}

// reply is the API envelope.
type reply struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	Payload json.RawMessage `json:"payload"`
	status  int
	header  http.Header
	body    []byte
}

// api calls the server's HTTP API; body is JSON-encoded unless it is an
// io.Reader. Errors are fatal.
func (e *env) api(method, path string, body any) reply {
	e.t.Helper()
	out, err := apiCall(e, method, path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// apiCall is e.api for the runs' goroutines: errors are returned, not
// fatal (t.Fatal must not be called off the test's goroutine).
func apiCall(e *env, method, path string, body any) (reply, error) {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return reply{}, err
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	out := reply{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(b, &out)
	}
	return out, nil
}

// runReq is the body of POST /api/exec/{id}/run.
type runReq struct {
	Cmd     string   `json:"cmd"`
	Args    []string `json:"args,omitempty"`
	Auth    string   `json:"auth,omitempty"`
	User    string   `json:"user,omitempty"`
	Pass    string   `json:"pass,omitempty"`
	WorkDir string   `json:"workdir,omitempty"`
	Env     []string `json:"env,omitempty"`
	Timeout int      `json:"timeout,omitempty"`
	Result  *bool    `json:"result,omitempty"`
	Pipe    bool     `json:"pipe,omitempty"`
}

type runReply struct {
	ID      string     `json:"id"`
	Begin   int64      `json:"begin"` // unix seconds
	BeginAt time.Time  `json:"begin_at"`
	PID     int        `json:"pid"`
	Result  *runResult `json:"result"`
}

type runResult struct {
	Running     bool      `json:"running"`
	Code        int       `json:"code"`
	End         int64     `json:"end"` // unix seconds
	EndAt       time.Time `json:"end_at"`
	Data        []byte    `json:"data"`
	State       string    `json:"state"`
	Msg         string    `json:"msg"`
	Dropped     int64     `json:"dropped"`
	OutputBytes int64     `json:"output_bytes"`
}

// run runs a command through the API; sync unless async.
func (e *env) run(req runReq, async bool) (runReply, reply) {
	e.t.Helper()
	if async {
		f := false
		req.Result = &f
	}
	r := e.api("POST", "/api/exec/"+e.agentID+"/run", req)
	var rr runReply
	if r.status == 200 {
		if err := json.Unmarshal(r.Payload, &rr); err != nil {
			e.t.Fatalf("run reply %s: %v", r.body, err)
		}
	}
	return rr, r
}

type status struct {
	TaskID string `json:"task_id"`
	Done   bool   `json:"done"`
	Code   int    `json:"code"`
	State  string `json:"state"`
	Msg    string `json:"msg"`
}

// waitDone polls the task's status until it is done. A 404 counts as not
// yet: after a server restart the task is known again only once the agent's
// journal replay has arrived, which can be just after the agent is listed.
func (e *env) waitDone(pid int, d time.Duration) status {
	e.t.Helper()
	var s status
	eventually.Within(e.t, d, fmt.Sprintf("task pid %d done", pid), func() bool {
		r := e.api("GET", fmt.Sprintf("/api/exec/%s/status/%d", e.agentID, pid), nil)
		switch r.status {
		case 200:
			s = status{}
			_ = json.Unmarshal(r.Payload, &s)
			return s.Done
		case 404:
			return false
		}
		e.t.Fatalf("status %d: %d %s", pid, r.status, r.body)
		return false
	})
	return s
}

// upload sends the file at src as dir/name and returns the reply.
func (e *env) upload(src, dir, name, md5hex string) reply {
	e.t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := func() error {
			for k, v := range map[string]string{"dir": dir, "name": name, "md5": md5hex} {
				if err := mw.WriteField(k, v); err != nil {
					return err
				}
			}
			fw, err := mw.CreateFormFile("file", name)
			if err != nil {
				return err
			}
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(fw, f); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	})
	req, err := http.NewRequest("POST", e.url+"/api/file/"+e.agentID+"/upload", pr)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := e.client.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		wg.Wait()
		e.t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pr.CloseWithError(io.ErrClosedPipe)
	wg.Wait()
	out := reply{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &out)
	return out
}

// download streams path from the agent into w and returns the HTTP status
// and headers (the body is the error when the status is not 200).
func (e *env) download(path string, w io.Writer) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+"/api/file/"+e.agentID+"/download?dir="+url.QueryEscape(path), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		e.t.Fatalf("download body: %v", err)
	}
	return 200, resp.Header, nil
}

// newProxy forwards to target until e's cleanup closes it.
func newProxy(t testing.TB, target string) *servertest.Proxy {
	t.Helper()
	p, err := servertest.NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// procsMatching returns the pids whose command line contains s.
func procsMatching(t testing.TB, s string) []int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		var pid int
		_, _ = fmt.Sscanf(d, "/proc/%d/cmdline", &pid)
		if pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}
