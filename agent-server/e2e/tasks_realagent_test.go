//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/internal/layout/layouttest"
	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/internal/testserver"

	"github.com/agentfleet/jkframe/eventually"
)

// realAgents builds the real exec-agent and runs n of them (ids r0…) as
// processes against ts.
func realAgents(t *testing.T, ts *testServer, n int) []string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "exec-agent")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../../exec-agent"
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build exec-agent: %v\n%s", err, out)
	}
	var ids []string
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		adir := filepath.Join(dir, id, "conf")
		if err := os.MkdirAll(adir, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf("basic.id = %s\nbasic.server = %s\nbasic.token = %s\nbasic.log.target = stdout\nbasic.monitor.enabled = false\n", id, ts.addr, agentToken)
		path := filepath.Join(adir, "agent.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(dir, id, "agent.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--conf", path, "run")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			log.Close()
			if t.Failed() {
				b, _ := os.ReadFile(log.Name())
				t.Logf("%s log:\n%s", id, b)
			}
		})
		ids = append(ids, id)
	}
	for _, id := range ids {
		ts.waitOnline(id)
	}
	return ids
}

// processesWith lists pids whose command line contains s.
func processesWith(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			out = append(out, e.Name())
		}
	}
	return out
}

// startServerForReal is startServer with the hub's default dead-peer
// timeout: real agents ping every 10 s, not every 200 ms.
func startServerForReal(t *testing.T) *testServer {
	t.Helper()
	run := testserver.Start(t, testserver.Config("e2e", t.TempDir()),
		server.Options{Logger: logger(t), ShutdownTimeout: 5 * time.Second, TouchInterval: 100 * time.Millisecond})
	return newTestServer(t, run, 20*time.Second)
}

func TestRealExecAgents(t *testing.T) {
	ts := startServerForReal(t)
	ids := realAgents(t, ts, 3)

	// A fleet task: output, exit codes, max_errors on real commands.
	id, e := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": "echo out; exit 3", "concurrency": 1, "max_errors": 1})
	if id == "" {
		t.Fatalf("create: %d %s", e.status, e.Msg)
	}
	v := ts.waitTask(t, id, 30*time.Second)
	m := byAgent(v)
	if v.Summary.Failed != 2 || v.Summary.Skipped != 1 || m["r0"].ExitCode != 3 || !strings.Contains(m["r0"].OutputHead, "out") || m["r2"].State != "skipped" {
		t.Fatalf("max_errors: %+v", v)
	}

	// Cancel kills the running commands (no process survives) and starts nothing new.
	marker := "31.4159"
	id, _ = ts.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": "sleep " + marker, "concurrency": 2})
	eventually.Within(t, 30*time.Second, "two commands running", func() bool { return len(processesWith("sleep "+marker)) >= 2 })
	if c := ts.do("DELETE", "/api/tasks/"+id, opToken, nil); c.status != 200 {
		t.Fatalf("cancel: %d %s", c.status, c.Msg)
	}
	v = ts.task(t, id)
	m = byAgent(v)
	if v.State != "cancelled" || m["r0"].Msg != "killed: task cancelled" || m["r1"].Msg != "killed: task cancelled" || m["r2"].State != "skipped" {
		t.Fatalf("cancel: %+v", v)
	}
	eventually.Within(t, 30*time.Second, "killed commands gone", func() bool { return len(processesWith("sleep "+marker)) == 0 })

	// A layout in evenodd mode: push a file, then read it back.
	dir := t.TempDir()
	tar := layouttest.Tar(t, true, mainYAML(fmt.Sprintf(`  - {name: push, plugin: file, src: f.txt, dst: '%s/f-$ID.txt'}
  - {name: read, plugin: exec, cmd: 'cat %s/f-$ID.txt; echo $IDX', output: got}
  - {name: check, plugin: exec, cmd: 'echo checked', if: $got != ''}
`, dir, dir)), layouttest.Entry{Name: "f.txt", Body: "payload"})
	_, st := ts.layoutDone(t, ts.runLayout(t, tar, "ids", strings.Join(ids, ","), "mode", "evenodd"))
	if st.State != "done" {
		t.Fatalf("layout: %+v", st)
	}
	for i, n := range st.Nodes {
		if !n.OK || !strings.Contains(n.Steps[1].Output, "payload") || !strings.Contains(n.Steps[1].Output, fmt.Sprint(i)) || n.Steps[2].Skipped {
			t.Fatalf("node %s: %+v", n.ID, n)
		}
	}
}
