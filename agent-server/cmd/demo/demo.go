package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// demo owns the processes it started; stopAll ends them in reverse order.
type demo struct {
	bin, data string
	port      int
	out       *os.File
	token     string // operator API token

	mu     sync.Mutex
	procs  []*proc
	exited chan error // a process that ended on its own
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func exe(name string) string {
	if runtime.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}

func (d *demo) base() string { return fmt.Sprintf("http://127.0.0.1:%d", d.port) }

// start runs one binary with its output in data/logs/<name>.out.
func (d *demo) start(name string, args ...string) error {
	if err := os.MkdirAll(filepath.Join(d.data, "logs"), 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(d.data, "logs", name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.bin, exe(name)), args...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = log, log, d.data
	detach(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: log}
	d.mu.Lock()
	if d.exited == nil {
		d.exited = make(chan error, 8)
	}
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		close(p.done)
		select {
		case d.exited <- fmt.Errorf("%s exited (%v); see %s", name, err, log.Name()):
		default:
		}
	}()
	return nil
}

// stopAll asks every process to stop (SIGTERM, or kill on Windows), agents
// first, and waits up to 10 s each before killing.
func (d *demo) stopAll() {
	d.mu.Lock()
	procs := d.procs
	d.procs = nil
	d.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if runtime.GOOS == "windows" {
			_ = p.cmd.Process.Kill()
		} else {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.log.Close()
	}
}

func (d *demo) write(rel, content string) (string, error) {
	path := filepath.Join(d.data, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(content), 0o600)
}

func (d *demo) startServer(ctx context.Context, wait time.Duration) error {
	conf, err := d.write("server/server.conf", fmt.Sprintf(`# written by the demo
id = demo
listen = %d
listen_addr = 127.0.0.1
data_dir = %s
cache_dir = %s
log_dir = %s
store.driver = sqlite
log_target = stdout
`, d.port, filepath.Join(d.data, "server", "data"), filepath.Join(d.data, "server", "cache"), filepath.Join(d.data, "server", "logs")))
	if err != nil {
		return err
	}
	if err := d.start("agent-server", "run", "--conf", conf); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		if err := d.get(ctx, "/healthz", nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent-server did not answer on %s within %s; see %s", d.base(), wait, filepath.Join(d.data, "logs", "agent-server.out"))
		}
		if err := d.sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	tok, err := os.ReadFile(filepath.Join(d.data, "server", "data", "api-token"))
	if err != nil {
		return fmt.Errorf("read the generated API token: %w", err)
	}
	d.token = strings.TrimSpace(string(tok))
	return nil
}

func (d *demo) startAgent(name string) error {
	tok, err := os.ReadFile(filepath.Join(d.data, "server", "data", "agent-token"))
	if err != nil {
		return fmt.Errorf("read the generated agent token: %w", err)
	}
	conf, err := d.write(filepath.Join(name, "agent.conf"), fmt.Sprintf(`# written by the demo
basic.server = 127.0.0.1:%d
basic.token = %s
basic.labels = demo=yes
basic.log.target = stdout
`, d.port, strings.TrimSpace(string(tok))))
	if err != nil {
		return err
	}
	return d.start(name, "run", "--conf", conf)
}

// agentView is the part of GET /api/agents the demo reads.
type agentView struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Online bool   `json:"is_online"`
}

// waitAgents waits until one agent of each demo type is online and returns
// their ids by type.
func (d *demo) waitAgents(ctx context.Context, wait time.Duration) (map[string]string, error) {
	deadline := time.Now().Add(wait)
	for {
		var list []agentView
		err := d.get(ctx, "/api/agents?online=true&size=100", &list)
		ids := map[string]string{}
		for _, a := range list {
			ids[a.Type] = a.ID
		}
		missing := []string{}
		for _, name := range agents {
			if ids[name] == "" {
				missing = append(missing, name)
			}
		}
		if err == nil && len(missing) == 0 {
			return ids, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not connected: %s", strings.Join(missing, ", "))
			}
			return nil, fmt.Errorf("agents did not come up within %s: %w; logs in %s", wait, err, filepath.Join(d.data, "logs"))
		}
		select {
		case err := <-d.exited:
			return nil, err
		default:
		}
		if err := d.sleep(ctx, 300*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// check runs one command on the exec-agent and a foo on the example-agent
// through the API.
func (d *demo) check(ctx context.Context, ids map[string]string) error {
	var run struct {
		Result struct {
			Code int    `json:"code"`
			Data string `json:"data"`
		} `json:"result"`
	}
	body := `{"cmd":"echo","args":["hello from the demo"],"result":true,"timeout":30}`
	if err := d.do(ctx, http.MethodPost, "/api/exec/"+ids["exec-agent"]+"/run", body, &run); err != nil {
		return fmt.Errorf("run a command: %w", err)
	}
	outB, err := base64.StdEncoding.DecodeString(run.Result.Data)
	if err != nil {
		return fmt.Errorf("command output is not base64: %w", err)
	}
	if run.Result.Code != 0 || !strings.Contains(string(outB), "hello from the demo") {
		return fmt.Errorf("command: code %d output %q", run.Result.Code, outB)
	}
	if err := d.get(ctx, "/api/foo/"+ids["example-agent"], nil); err != nil {
		return fmt.Errorf("foo: %w", err)
	}
	types := make([]string, 0, len(ids))
	for t := range ids {
		types = append(types, t)
	}
	sort.Strings(types)
	fmt.Fprintf(d.out, "demo check ok: agents %s connected; exec-agent ran echo (exit 0); example-agent answered foo\n", strings.Join(types, ", "))
	return d.checkAgentctl(ctx, ids)
}

func (d *demo) printHelp(ids map[string]string) {
	fmt.Fprintf(d.out, `
agent-server is running on %[1]s with %[2]d agents (data, configs and logs in %[3]s).

API token:  %[4]s
            (generated on first start, kept in %[5]s)

Try agentctl, the command line, in another terminal:

  export AGENTCTL_SERVER=%[1]s AGENTCTL_TOKEN=%[4]s
  %[9]s agents ls
  %[9]s run %[6]s -- uname -a
  %[9]s run -l demo=yes --summary -- 'echo hello from $(hostname)'
  %[9]s cp README.md %[6]s:/tmp/agentctl-demo/
  %[9]s metrics %[7]s
  %[9]s shell %[6]s
  %[9]s --help
  (or save a context: echo "$AGENTCTL_TOKEN" | %[9]s login %[1]s --token-stdin --name demo)

or curl:

  export TOKEN=%[4]s
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/agents
  curl -s -H "Authorization: Bearer $TOKEN" -X POST %[1]s/api/exec/%[6]s/run -d '{"cmd":"uname","args":["-a"]}'
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/metrics/%[7]s/dynamic/usage
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/foo/%[8]s
  curl -s %[1]s/metrics | grep agent_info

Console: %[1]s/ui/   signed in: %[1]s/ui/#token=%[4]s (the fragment never reaches the server)
API reference: %[1]s/docs/      Ctrl-C stops everything.
`, d.base(), len(ids), d.data, d.token, filepath.Join(d.data, "server", "data", "api-token"),
		ids["exec-agent"], ids["metrics-agent"], ids["example-agent"], d.agentctl())
}

// agentctl is how the user reaches bin/agentctl from the current
// directory.
func (d *demo) agentctl() string {
	p := filepath.Join(d.bin, exe("agentctl"))
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
			if !strings.ContainsRune(rel, filepath.Separator) {
				rel = "." + string(filepath.Separator) + rel
			}
			return rel
		}
	}
	return p
}

// checkAgentctl runs two of the printed agentctl commands, when agentctl
// is built: the agents listed, a command run with its output.
func (d *demo) checkAgentctl(ctx context.Context, ids map[string]string) error {
	bin := filepath.Join(d.bin, exe("agentctl"))
	if _, err := os.Stat(bin); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ctl := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "AGENTCTL_SERVER="+d.base(), "AGENTCTL_TOKEN="+d.token,
			"AGENTCTL_CONFIG="+filepath.Join(d.data, "agentctl", "config.yaml"), "AGENTCTL_CONTEXT=")
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return "", fmt.Errorf("agentctl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(ee.Stderr))
			}
			return "", fmt.Errorf("agentctl %s: %w", strings.Join(args, " "), err)
		}
		return string(out), nil
	}
	out, err := ctl("agents", "ls")
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !strings.Contains(out, id) {
			return fmt.Errorf("agentctl agents ls does not list %s:\n%s", id, out)
		}
	}
	if out, err = ctl("run", ids["exec-agent"], "--", "echo hello from agentctl"); err != nil {
		return err
	}
	if out != "hello from agentctl\n" {
		return fmt.Errorf("agentctl run: output %q", out)
	}
	fmt.Fprintln(d.out, "demo check ok: agentctl listed the agents and ran a command")
	return nil
}

func (d *demo) sleep(ctx context.Context, t time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(t):
		return nil
	}
}

func (d *demo) get(ctx context.Context, path string, payload any) error {
	return d.do(ctx, http.MethodGet, path, "", payload)
}

// do calls the API and decodes the envelope's payload into payload.
func (d *demo) do(ctx context.Context, method, path, body string, payload any) error {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base()+path, rd)
	if err != nil {
		return err
	}
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if payload == nil || !strings.HasPrefix(path, "/api/") {
		return nil
	}
	var env struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if len(env.Payload) == 0 {
		return errors.New(method + " " + path + ": no payload")
	}
	return json.Unmarshal(env.Payload, payload)
}
