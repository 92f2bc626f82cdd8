//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const (
	apiToken   = "e2e-operator-token-0123456789"
	agentToken = "e2e-agent-token-0123456789"
	agentID    = "e2e-exec-agent"
)

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
		bins.server = filepath.Join(dir, "agent-server")
		bins.agent = filepath.Join(dir, "exec-agent")
		for _, b := range []struct{ out, pkgDir string }{
			{bins.server, "../../agent-server"},
			{bins.agent, ".."},
		} {
			cmd := exec.Command("go", "build", "-o", b.out, ".")
			cmd.Dir = b.pkgDir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				// The shared build cache of a busy machine fails now and
				// then ("could not import … open : no such file"): retry once.
				retry := exec.Command("go", "build", "-o", b.out, ".")
				retry.Dir, retry.Env = cmd.Dir, cmd.Env
				out, err = retry.CombinedOutput()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.pkgDir, err, out)
				return 1
			}
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

// freePort returns a port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a child process with its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t testing.TB, name, logPath string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p
}

// stop sends sig and waits for the exit (SIGKILL after 20 s).
func (p *proc) stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop on %v; killing it", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's log.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// env is a server, a proxy and an exec-agent connected through it.
type env struct {
	t        testing.TB
	dir      string
	port     int
	url      string
	server   *proc
	agent    *proc
	proxy    *proxy
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
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), port: freePort(t), agentID: agentID,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	e.url = fmt.Sprintf("http://127.0.0.1:%d", e.port)
	e.logLevel = o.logLevel
	if e.logLevel == "" {
		e.logLevel = "debug"
	}
	e.startServer()
	e.proxy = newProxy(t, fmt.Sprintf("127.0.0.1:%d", e.port))
	adir := filepath.Join(e.dir, "agent")
	if o.agentDir != "" {
		adir = filepath.Join(o.agentDir, filepath.Base(e.dir))
		t.Cleanup(func() { os.RemoveAll(adir) })
	}
	server := e.proxy.addr()
	if o.direct {
		server = fmt.Sprintf("127.0.0.1:%d", e.port)
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
	e.agent = startProc(t, "exec-agent", filepath.Join(e.dir, "agent.log"), bins.agent, "--conf", confPath, "run")
	t.Cleanup(func() {
		e.agent.stop(t, syscall.SIGTERM)
		e.proxy.close()
		e.server.stop(t, syscall.SIGTERM)
		e.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("agent log:\n%s", e.agent.tail())
			t.Logf("server log:\n%s", e.server.tail())
		}
	})
	e.waitOnline()
	return e
}

// startServer starts agent-server on e.port with its data in e.dir/server
// (kept across restarts).
func (e *env) startServer() {
	e.t.Helper()
	sdir := filepath.Join(e.dir, "server")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	conf := fmt.Sprintf(`id = e2e
listen = %d
listen_addr = 127.0.0.1
data_dir = %s/data
cache_dir = %s/cache
cache_threshold = 99
log_dir = %s/logs
log_target = stdout
log_level = %s
api.tokens = ops:%s
api.read_only_tokens = viewer:%s
api.rate_limit = 0
api.upload_max_body = 1G
agent.tokens = fleet:%s
connect_limit = 0
`, e.port, sdir, sdir, sdir, e.logLevel, apiToken, readOnlyToken, agentToken)
	confPath := filepath.Join(sdir, "server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.server = startProc(e.t, "agent-server", filepath.Join(e.dir, "server.log"), bins.server, "--conf", confPath, "run")
	eventually(e.t, 20*time.Second, "agent-server healthz", func() bool {
		resp, err := e.client.Get(e.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
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
	eventually(e.t, 30*time.Second, "exec-agent online", func() bool {
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
// io.Reader.
func (e *env) api(method, path string, body any) reply {
	e.t.Helper()
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	out := reply{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(b, &out)
	}
	return out
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
	eventually(e.t, d, fmt.Sprintf("task pid %d done", pid), func() bool {
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

// makeFile writes n deterministic bytes to path and returns their MD5 (hex).
func makeFile(t testing.TB, path string, n int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte(i*7 + i>>9)
	}
	for off := int64(0); off < n; {
		k := min(int64(len(block)), n-off)
		block[0] = byte(off >> 16) // no two blocks alike
		if _, err := bw.Write(block[:k]); err != nil {
			t.Fatal(err)
		}
		off += k
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileMD5(t testing.TB, path string) (string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxy forwards TCP connections to target. cut drops the live ones; pause
// makes it close new ones at once (the agent stays disconnected); with
// cutTransfersAt > 0, the response to a transfer GET (/api/transfer/…) is
// cut after that many bytes.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	paused bool
	cutAt  int64
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		paused, cutAt := p.paused, p.cutAt
		p.mu.Unlock()
		if paused {
			_ = c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() {
			// The first read holds the request line.
			buf := make([]byte, 32<<10)
			n, err := c.Read(buf)
			if err != nil {
				_ = u.Close()
				_ = c.Close()
				return
			}
			_, _ = u.Write(buf[:n])
			if cutAt > 0 && bytes.HasPrefix(buf[:n], []byte("GET /api/transfer/")) {
				p.wg.Go(func() { _, _ = io.Copy(u, c) })
				_, _ = io.CopyN(c, u, cutAt)
				_ = c.Close()
				_ = u.Close()
				return
			}
			p.wg.Go(func() { _, _ = io.Copy(c, u); _ = c.Close() })
			_, _ = io.Copy(u, c)
			_ = u.Close()
		})
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

func (p *proxy) pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.mu.Unlock()
}

func (p *proxy) cutTransfersAt(n int64) {
	p.mu.Lock()
	p.cutAt = n
	p.mu.Unlock()
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.cut()
	p.wg.Wait()
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
