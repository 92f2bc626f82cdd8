//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// createTask submits a fleet task through the API (as another tool would)
// and returns its id.
func createTask(t *testing.T, req map[string]any) string {
	t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	if err := fleet.api("POST", "/api/tasks", req, &v); err != nil {
		t.Fatal(err)
	}
	return v.ID
}

func taskState(t *testing.T, id string) string {
	var v struct {
		State string `json:"state"`
	}
	if err := fleet.api("GET", "/api/tasks/"+id, nil, &v); err != nil {
		t.Fatal(err)
	}
	return v.State
}

// TestTasks lists, shows, watches, cancels and prints fleet tasks.
func TestTasks(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	id := createTask(t, map[string]any{"selector": map[string]any{"labels": "e2e=yes"},
		"cmd": fmt.Sprintf(`echo ready; while [ ! -e %s ]; do sleep 0.05; done; echo "done on $E2E_AGENT"`, gate)})

	// watch --stream: once every agent's "ready" came through the stream,
	// open the gate; watch ends with the task.
	s := fleet.start(t, ctlOpts{}, "tasks", "watch", id, "--stream")
	eventually.Within(t, 60*time.Second, "ready from three agents", func() bool { return strings.Count(s.out.String(), "| ready") == 3 })
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.wait(t, 60*time.Second)
	if r.code != 0 || !strings.Contains(r.out, "e2e-a3 | done on e2e-a3") || !regexp.MustCompile(`task \w+ done: 3 agent\(s\): 3 ok`).MatchString(r.err) {
		t.Errorf("watch --stream: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	// watch of a finished task: the results at once.
	r = fleet.ok(t, "tasks", "watch", id)
	if !strings.Contains(r.err, "3 ok") {
		t.Errorf("watch done task:\n%s", r.err)
	}

	r = fleet.ok(t, "tasks", "ls", "--limit", "5")
	if !strings.Contains(r.out, id) || !strings.HasPrefix(r.out, "ID ") {
		t.Errorf("ls:\n%s", r.out)
	}
	r = fleet.ok(t, "tasks", "ls", "--state", "done", "--limit", "3", "-o", "json")
	checkShape(t, "tasks_ls", r.out)
	r = fleet.ok(t, "tasks", "get", id, "-o", "json")
	checkShape(t, "tasks_get", r.out)
	r = fleet.ok(t, "tasks", "get", id)
	if !regexp.MustCompile(`(?m)^e2e-a2\s+ok\s+0\s`).MatchString(r.out) || !strings.Contains(r.out, "3 ok") {
		t.Errorf("get:\n%s", r.out)
	}
	r = fleet.ok(t, "tasks", "output", id)
	if !strings.Contains(r.out, "e2e-a1 | ready\ne2e-a1 | done on e2e-a1\n") || strings.Count(r.out, "\n") != 6 {
		t.Errorf("output:\n%s", r.out)
	}
	r = fleet.ok(t, "tasks", "output", id, "e2e-a2")
	if strings.ReplaceAll(r.out, "\r", "") != "ready\ndone on e2e-a2\n" {
		t.Errorf("output of one agent: %q", r.out)
	}

	// cancel a running task.
	id = createTask(t, map[string]any{"selector": map[string]any{"ids": []string{"e2e-a1", "e2e-a2"}}, "cmd": "sleep 300"})
	eventually.Within(t, 30*time.Second, "task running", func() bool { return taskState(t, id) == "running" })
	r = fleet.ok(t, "tasks", "cancel", id)
	if !strings.Contains(r.out, "Cancelled "+id) {
		t.Errorf("cancel: %s", r.out)
	}
	eventually.Within(t, 30*time.Second, "task cancelled", func() bool { return taskState(t, id) == "cancelled" })
	r = fleet.ctl(t, ctlOpts{}, "tasks", "cancel", id)
	if r.code != 1 || !strings.Contains(r.err, "409") {
		t.Errorf("cancel twice: %d %s", r.code, r.err)
	}
	r = fleet.ctl(t, ctlOpts{}, "tasks", "watch", id)
	if r.code != 1 || !strings.Contains(r.err, "cancelled") {
		t.Errorf("watch of a cancelled task: %d %s", r.code, r.err)
	}
}

// TestScriptRun runs a local script on one agent (uploaded, exit code
// passed through) and on several (a fleet task, inline).
func TestScriptRun(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "check")
	os.WriteFile(script, []byte("#!/bin/bash\necho \"$BASH_VERSION\" | grep -q . && echo bash\necho \"args: $*\"\necho \"on $E2E_AGENT\"\nexit ${EXIT:-0}\n"), 0o644)
	r := fleet.ctl(t, ctlOpts{}, "script", "run", "e2e-a1", script, "-e", "EXIT=4", "--", "one", "two")
	if r.code != 4 || r.out != "bash\nargs: one two\non e2e-a1\n" {
		t.Errorf("one agent: exit %d %q %s", r.code, r.out, r.err)
	}
	r = fleet.ok(t, "script", "run", "e2e-a1", script, "-o", "json")
	checkShape(t, "run_one", r.out)
	r = fleet.ok(t, "script", "run", "-l", "role=web", "--summary", script, "--", "x")
	if !strings.Contains(r.out, "== 1 agent ok (exit 0): e2e-a1\n   bash\n   args: x\n   on e2e-a1\n") {
		t.Errorf("fleet script:\n%s", r.out)
	}
	py := filepath.Join(dir, "hello.py")
	os.WriteFile(py, []byte("import sys\nprint('py', sys.argv[1:])\n"), 0o644)
	r = fleet.ctl(t, ctlOpts{}, "script", "run", "e2e-a2", py, "--", "a")
	if _, err := os.Stat("/usr/bin/python3"); err == nil && (r.code != 0 || r.out != "py ['a']\n") {
		t.Errorf("python3 by extension: %d %q %s", r.code, r.out, r.err)
	}
}

// TestLayoutRun runs a layout folder on the agents of a selector, then a
// failing one.
func TestLayoutRun(t *testing.T) {
	dir := t.TempDir()
	lay := filepath.Join(dir, "lay")
	os.MkdirAll(filepath.Join(lay, "conf"), 0o755)
	os.WriteFile(filepath.Join(lay, "conf", "site.conf"), []byte("server {}\n"), 0o644)
	os.WriteFile(filepath.Join(lay, "main.yaml"), fmt.Appendf(nil, `name: e2e
timeout: 60
tasks:
  - {name: hello, plugin: exec, cmd: 'echo "hello $$E2E_AGENT $IDX"'}
  - {name: push, plugin: file, action: push, src: conf/site.conf, dst: '%s/site-$ID.conf'}
`, dir), 0o644)
	r := fleet.ctl(t, ctlOpts{}, "layout", "run", lay, "-l", "role=web", "--mode", "parallel")
	if r.code != 0 {
		t.Fatalf("layout: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	if !regexp.MustCompile(`(?m)^e2e-a1\s+hello\s+\w+\s+0`).MatchString(r.err) || !strings.Contains(r.err, "2/2 agent(s) finished") {
		t.Errorf("layout table:\n%s", r.err)
	}
	for _, id := range []string{"e2e-a1", "e2e-a2"} {
		if b, err := os.ReadFile(filepath.Join(dir, "site-"+id+".conf")); err != nil || string(b) != "server {}\n" {
			t.Errorf("pushed file of %s: %q %v", id, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "site-e2e-a3.conf")); err == nil {
		t.Error("e2e-a3 is not role=web")
	}
	// The layout through the tasks commands.
	m := regexp.MustCompile(`layout (\w+): 2 agent`).FindStringSubmatch(r.err)
	if m == nil {
		t.Fatalf("no layout id in:\n%s", r.err)
	}
	r = fleet.ok(t, "tasks", "get", m[1])
	if !regexp.MustCompile(`(?m)^e2e-a2\s+push\s+\w+`).MatchString(r.out) {
		t.Errorf("tasks get of a layout:\n%s", r.out)
	}
	r = fleet.ok(t, "tasks", "watch", m[1])
	if !strings.Contains(r.err, "2/2 agent(s) finished") {
		t.Errorf("tasks watch of a finished layout:\n%s", r.err)
	}
	os.WriteFile(filepath.Join(lay, "main.yaml"), []byte("name: bad\ntimeout: 60\ntasks:\n  - {name: fail, plugin: exec, cmd: 'exit 5'}\n"), 0o644)
	r = fleet.ctl(t, ctlOpts{}, "layout", "run", lay, "e2e-a3", "-o", "json")
	if r.code != 1 {
		t.Errorf("failing layout: exit %d", r.code)
	}
	checkShape(t, "layout", r.out)
	var st struct {
		State string `json:"state"`
		Nodes []struct {
			OK    bool `json:"ok"`
			Steps []struct {
				Code int `json:"code"`
			} `json:"steps"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(r.out), &st); err != nil || len(st.Nodes) != 1 || st.Nodes[0].OK || st.Nodes[0].Steps[0].Code != 5 {
		t.Errorf("failing layout: %+v %v", st, err)
	}
	r = fleet.ctl(t, ctlOpts{}, "layout", "run", dir, "e2e-a1")
	if r.code != 2 || !strings.Contains(r.err, "no main.yaml") {
		t.Errorf("no main.yaml: %d %s", r.code, r.err)
	}
}
