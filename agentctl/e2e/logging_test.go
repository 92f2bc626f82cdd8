//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/servertest"
)

// startLogAgent starts the real log-agent as id against e (stopped with
// e). It polls files every 10 ms, so lines written arrive fast.
func (e *env) startLogAgent(t *testing.T, id string) {
	t.Helper()
	adir := filepath.Join(e.dir, id)
	if err := os.MkdirAll(adir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`basic.id = %s
basic.server = %s
basic.token = %s
basic.log.target = file
basic.log.dir = %s/logs
basic.monitor.enabled = false
collect.projects =
collect.data_dir = %s/data
collect.poll = 10ms
collect.scan = 50ms
collect.rotate_wait = 200ms
`, id, strings.TrimPrefix(e.url, "http://"), agentToken, adir, adir)
	cp := filepath.Join(adir, "agent.conf")
	if err := os.WriteFile(cp, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := servertest.StartProc(servertest.ProcOptions{Name: id, Args: []string{bins.log, "--conf", cp, "run"},
		Log: filepath.Join(e.dir, id+".log")})
	if err != nil {
		t.Fatal(err)
	}
	e.agents = append(e.agents, p)
	eventually.Within(t, 60*time.Second, id+" online", func() bool { return e.online()[id] })
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestLogging drives `agentctl logging` against the real server and a real
// log-agent tailing a real file: a project from flags and from a YAML
// file, the list and the per-node status, the query with its filters and
// paging, the live tail (a line written to the file arrives; Ctrl-C ends
// it with 130), stop, start and remove, and the errors.
func TestLogging(t *testing.T) {
	e, err := startEnv(filepath.Join(t.TempDir(), "env"), envOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			e.dumpLogs(os.Stderr)
		}
		e.stop()
	}()
	e.startLogAgent(t, "e2e-l1")
	logs := t.TempDir()
	app := filepath.Join(logs, "app.log")
	var text strings.Builder
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&text, "line %02d\n", i)
	}
	text.WriteString("ERROR something broke\n")
	appendFile(t, app, text.String())

	r := e.ok(t, "logging", "projects")
	if !strings.Contains(r.err, "no project") {
		t.Errorf("empty list: %q %q", r.out, r.err)
	}
	r = e.ok(t, "logging", "config", "web", "--type", "logtail", "--ids", "e2e-l1", "--dir", filepath.Join(logs, "*.log"),
		"--read-from", "beginning", "--interval", "1", "--batch", "10")
	if r.out != "project web created\n" {
		t.Errorf("config: %q", r.out)
	}
	status := func() (st struct {
		PID     string `json:"pid"`
		Running bool   `json:"running"`
		Nodes   []struct {
			ID      string         `json:"id"`
			Status  string         `json:"status"`
			Pending bool           `json:"pending"`
			Online  bool           `json:"online"`
			Stats   map[string]any `json:"stats"`
		} `json:"nodes"`
	}) {
		r := e.ok(t, "logging", "status", "web", "-o", "json")
		if err := json.Unmarshal([]byte(r.out), &st); err != nil {
			t.Fatalf("status json: %v\n%s", err, r.out)
		}
		return st
	}
	eventually.Within(t, 60*time.Second, "the node running (reported, not only asked for)", func() bool {
		st := status()
		return len(st.Nodes) == 1 && st.Nodes[0].Status == "running" && st.Nodes[0].Online && !st.Nodes[0].Pending
	})
	r = e.ok(t, "logging", "status", "web")
	if !regexp.MustCompile(`(?m)^e2e-l1\s+running\s+online\s`).MatchString(r.out) || !strings.Contains(r.out, "web: logtail, running") {
		t.Errorf("status table:\n%s", r.out)
	}
	r = e.ok(t, "logging", "status", "web", "-o", "wide")
	if !strings.Contains(r.out, "dir="+filepath.Join(logs, "*.log")) {
		t.Errorf("status wide:\n%s", r.out)
	}
	r = e.ok(t, "logging", "projects")
	if !regexp.MustCompile(`(?m)^web\s+logtail\s+running\s+1/1 running\s+` + regexp.QuoteMeta(filepath.Join(logs, "*.log")) + `$`).MatchString(r.out) {
		t.Errorf("projects table:\n%s", r.out)
	}
	r = e.ok(t, "logging", "projects", "-o", "wide")
	if !strings.Contains(r.out, "INTERVAL") || !regexp.MustCompile(`\s10\s+4\.0KiB\s+1s\s`).MatchString(r.out) {
		t.Errorf("projects wide:\n%s", r.out)
	}
	r = e.ok(t, "logging", "projects", "-o", "json")
	checkShape(t, "logging_projects", r.out)
	r = e.ok(t, "logging", "projects", "web", "-o", "yaml")
	if !strings.Contains(r.out, "pid: web") || !strings.Contains(r.out, "read_from: beginning") {
		t.Errorf("projects web -o yaml:\n%s", r.out)
	}

	// The query: all 26 lines in order, through pages of 4.
	eventually.Within(t, 60*time.Second, "the 26 lines stored", func() bool {
		r := e.ok(t, "logging", "query", "web", "-o", "raw", "--limit", "0")
		return strings.Count(r.out, "\n") == 26
	})
	r = e.ok(t, "logging", "query", "web", "-o", "raw", "--limit", "0", "--page-size", "4")
	if r.out != text.String() {
		t.Errorf("raw through pages of 4:\n%s", r.out)
	}
	r = e.ok(t, "logging", "query", "web", "--limit", "7", "--page-size", "3")
	if strings.Count(r.out, "\n") != 7 || !strings.HasPrefix(r.out, "e2e-l1 | line 01\n") || !strings.Contains(r.out, "e2e-l1 | line 07\n") {
		t.Errorf("limit 7:\n%s", r.out)
	}
	m := regexp.MustCompile(`--cursor (\S+) continues`).FindStringSubmatch(r.err)
	if m == nil {
		t.Fatalf("no cursor named on stderr: %q", r.err)
	}
	r = e.ok(t, "logging", "query", "web", "--cursor", m[1], "-o", "raw", "--limit", "0")
	if !strings.HasPrefix(r.out, "line 08\n") || strings.Count(r.out, "\n") != 19 {
		t.Errorf("continued:\n%s", r.out)
	}
	r = e.ok(t, "logging", "query", "web", "--grep", "^ERROR", "--host", "e2e-l1", "--source", filepath.Join(logs, "*.log"), "-o", "wide")
	if strings.Count(r.out, "\n") != 1 || !strings.Contains(r.out, " e2e-l1 "+app+":") || !strings.HasSuffix(r.out, "| ERROR something broke\n") {
		t.Errorf("grep, wide:\n%s", r.out)
	}
	r = e.ok(t, "logging", "query", "web", "--grep", "line 0[12]", "-o", "json")
	var jl struct {
		Host, Source, Line string
		Offset             int64
		Time               string
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &jl) != nil || jl.Line != "line 02" || jl.Offset <= 0 || jl.Source != app || jl.Time == "" {
		t.Errorf("json lines:\n%s", r.out)
	}
	if r := e.ok(t, "logging", "query", "web", "--until", "2000-01-01T00:00:00Z"); r.out != "" {
		t.Errorf("until 2000: %q", r.out)
	}
	if r := e.ok(t, "logging", "query", "web", "--since", "1h", "--host", "nobody"); r.out != "" {
		t.Errorf("another host: %q", r.out)
	}

	// tail without -f: the last lines; with -f: a line written to the file
	// arrives, a line that does not match does not; Ctrl-C ends it.
	r = e.ok(t, "logging", "tail", "web", "-n", "2", "-o", "raw")
	if r.out != "line 25\nERROR something broke\n" {
		t.Errorf("tail -n 2: %q", r.out)
	}
	s := e.start(t, ctlOpts{}, "logging", "tail", "web", "-f", "-n", "1", "--grep", "line")
	eventually.Within(t, 60*time.Second, "the backlog line (subscribed)", func() bool { return s.out.String() == "e2e-l1 | line 25\n" })
	appendFile(t, app, "not this one\nline for the tail\n")
	eventually.Within(t, 60*time.Second, "the new line live", func() bool { return strings.Contains(s.out.String(), "e2e-l1 | line for the tail\n") })
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r = s.wait(t, 30*time.Second)
	if r.code != 130 || r.err != "" || r.out != "e2e-l1 | line 25\ne2e-l1 | line for the tail\n" {
		t.Errorf("tail -f after Ctrl-C: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}

	// stop, start, and their conflicts.
	if r := e.ok(t, "logging", "stop", "web"); r.out != "project web stopped\n" {
		t.Errorf("stop: %q", r.out)
	}
	eventually.Within(t, 60*time.Second, "the node stopped", func() bool { st := status(); return !st.Running && st.Nodes[0].Status == "stoped" })
	if r := e.ok(t, "logging", "status", "web"); !regexp.MustCompile(`(?m)^e2e-l1\s+stopped\s+online`).MatchString(r.out) {
		t.Errorf("status stopped:\n%s", r.out)
	}
	if r := e.ctl(t, ctlOpts{}, "logging", "stop", "web"); r.code != 1 || !strings.Contains(r.err, "409") || !strings.Contains(r.err, "not started") {
		t.Errorf("stop twice: %d %s", r.code, r.err)
	}
	e.ok(t, "logging", "start", "web")
	eventually.Within(t, 60*time.Second, "the node running again", func() bool { st := status(); return st.Running && st.Nodes[0].Status == "running" })

	// A project from a YAML file (ids as a list), replaced from JSON.
	yml := filepath.Join(t.TempDir(), "other.yaml")
	os.WriteFile(yml, []byte("pid: other\ntype: logtail\nids: [e2e-l1]\ndir: "+filepath.Join(logs, "other-*.log")+"\nexclude: DEBUG\n"), 0o644)
	if r := e.ok(t, "logging", "apply", yml); r.out != "project other created\n" {
		t.Errorf("apply: %q", r.out)
	}
	r = e.ctl(t, ctlOpts{stdin: strings.NewReader(`{"pid":"other","type":"logtail","ids":"e2e-l1","dir":"/var/log/x.log","batch":50}`)}, "logging", "apply", "-")
	if r.code != 0 || r.out != "project other replaced\n" {
		t.Errorf("apply -: %d %q %q", r.code, r.out, r.err)
	}
	r = e.ok(t, "logging", "projects", "other", "-o", "json")
	var other struct {
		Batch  int `json:"batch"`
		Config struct {
			Dir string `json:"dir"`
		} `json:"config"`
	}
	if json.Unmarshal([]byte(r.out), &other) != nil || other.Batch != 50 || other.Config.Dir != "/var/log/x.log" {
		t.Errorf("replaced project:\n%s", r.out)
	}
	r = e.ok(t, "__complete", "logging", "status", "o")
	if !strings.Contains(r.out, "other\tlogtail running") || strings.Contains(r.out, "web\t") {
		t.Errorf("completion:\n%s", r.out)
	}

	// Errors: usage (2), the server's 400 naming the parameter (1), 404.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("pid: x\ntype: logtail\npaths: [/a]\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"logging", "apply", bad}, 2, "line 3: field paths not found"},
		{[]string{"logging", "config", "x", "--ids", "e2e-l1"}, 2, "--type is required"},
		{[]string{"logging", "config", "x", "--type", "logtail", "--ids", "e2e-l1", "--dir", "rel/*.log"}, 1, "invalid parameter dir"},
		{[]string{"logging", "config", "x", "--type", "logtail", "--ids", "nobody", "--dir", "/x/*.log"}, 1, "no available collection node"},
		{[]string{"logging", "status", "nope"}, 1, "404: not found: project"},
		{[]string{"logging", "query", "web", "--since", "yesterday"}, 2, "--since"},
		{[]string{"logging", "query", "web", "--grep", "("}, 1, "invalid parameter grep"},
		{[]string{"logging", "query", "web", "-o", "table"}, 2, "-o table"},
		{[]string{"logging", "tail", "nope", "-f"}, 1, "404: not found: project"},
	} {
		r := e.ctl(t, ctlOpts{}, c.args...)
		if r.code != c.code || !strings.Contains(r.err, c.msg) {
			t.Errorf("%s: exit %d %q, want %d naming %q", strings.Join(c.args, " "), r.code, r.err, c.code, c.msg)
		}
	}

	// Remove: gone from the list, its lines deleted.
	if r := e.ok(t, "logging", "rm", "web", "other"); r.out != "project web removed\nproject other removed\n" {
		t.Errorf("rm: %q", r.out)
	}
	if r := e.ok(t, "logging", "projects", "-o", "json"); strings.TrimSpace(r.out) != "[]" {
		t.Errorf("after rm: %s", r.out)
	}
	if r := e.ctl(t, ctlOpts{}, "logging", "query", "web"); r.code != 1 || !strings.Contains(r.err, "not found: project") {
		t.Errorf("query after rm: %d %s", r.code, r.err)
	}
}
