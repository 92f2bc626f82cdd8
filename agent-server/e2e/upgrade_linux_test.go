package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/servertest"
	"github.com/agentfleet/jkframe/daemon"
	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/libagent/selfupdate"
)

// Self-update end to end (docs/upgrade.md): exec-agent released twice by
// .ci/release (what `make release` runs) with different versions and a
// signing key, agents supervised by jkframe/daemon as a service manager
// would (restart on exit: basic.upgrade.restart = exit), the real server
// with its package repository.

// release builds exec-agent version as `make release` does, signed with
// key, and returns the bare binary and its .sig text.
func release(t *testing.T, version, key string) (bin, sig string) {
	t.Helper()
	bin, sig, err := servertest.Release(servertest.ReleaseOptions{Module: "exec-agent", Version: version, Key: key, Dir: t.TempDir()})
	must(t, err)
	return bin, sig
}

// brokenBinary builds a program that exits 1 at once: a new version that
// never comes up.
func brokenBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n\ngo 1.26.0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"os\"\n\nfunc main() { os.Exit(1) }\n"), 0o644))
	bin := filepath.Join(dir, "broken")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the broken binary: %v\n%s", err, b)
	}
	return bin
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// supervisedAgent is an exec-agent installed in its own directory
// (bin/exec-agent, conf/agent.conf) and kept running by a daemon.Supervisor.
type supervisedAgent struct {
	id, dir, exe string
}

// install puts binary v1 and a config (basic.upgrade.restart = restart)
// in a new directory and returns the agent and its config path.
func install(t *testing.T, ts *testServer, v1, id, pub, restart string) (*supervisedAgent, string) {
	t.Helper()
	a := &supervisedAgent{id: id, dir: filepath.Join(t.TempDir(), id)}
	a.exe = filepath.Join(a.dir, "bin", "exec-agent")
	must(t, os.MkdirAll(filepath.Join(a.dir, "bin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(a.dir, "conf"), 0o755))
	b, err := os.ReadFile(v1)
	must(t, err)
	must(t, os.WriteFile(a.exe, b, 0o755))
	conf := fmt.Sprintf("basic.id = %s\nbasic.server = %s\nbasic.token = %s\nbasic.log.target = file\nbasic.log.dir = %s\nbasic.monitor.enabled = false\nbasic.upgrade.public_key = %s\nbasic.upgrade.restart = %s\n",
		id, ts.addr, agentToken, filepath.Join(a.dir, "logs"), pub, restart)
	path := filepath.Join(a.dir, "conf", "agent.conf")
	must(t, os.WriteFile(path, []byte(conf), 0o644))
	return a, path
}

// startSupervised installs an agent (restart = exit) and keeps it running
// with jkframe/daemon, as a service manager would.
func startSupervised(t *testing.T, ts *testServer, v1, id, pub string) *supervisedAgent {
	t.Helper()
	a, path := install(t, ts, v1, id, pub, "exit")
	logf, err := os.Create(filepath.Join(a.dir, "stdout.log"))
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	sup := &daemon.Supervisor{
		Command: []string{a.exe, "--conf", path, "run"}, Dir: a.dir,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Grace: 5 * time.Second,
		Stdout: logf, Stderr: logf, Signals: make(chan os.Signal), Logger: slog.New(slog.DiscardHandler),
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := sup.Run(ctx); err != nil {
			t.Errorf("supervisor %s: %v", id, err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = logf.Close()
		if t.Failed() {
			for _, f := range []string{logf.Name(), filepath.Join(a.dir, "conf", "agent.upgrade.log"), filepath.Join(a.dir, "logs", "exec-agent.log")} {
				if b, err := os.ReadFile(f); err == nil {
					t.Logf("%s %s:\n%s", id, filepath.Base(f), b)
				}
			}
		}
	})
	ts.waitOnline(id)
	return a
}

// putPackage uploads a file to the server's package repository.
func (ts *testServer) putPackage(t *testing.T, name, path string) {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	e := ts.do("PUT", "/api/packages/"+name, opToken, f)
	if e.status != 200 && e.status != 201 {
		t.Fatalf("upload %s: %d %s", name, e.status, e.body)
	}
}

func (ts *testServer) upgrade(t *testing.T, body map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(body)
	e := ts.do("POST", "/api/agents/upgrade", opToken, bytes.NewReader(b))
	if e.status != 200 {
		t.Fatalf("POST /api/agents/upgrade: %d %s", e.status, e.body)
	}
	var p struct{ ID string }
	must(t, json.Unmarshal(e.Payload, &p))
	return p.ID
}

func (ts *testServer) versions(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range ts.agents("online=true&size=1000") {
		m[a.ID] = a.Version
	}
	return m
}

func TestSelfUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds exec-agent twice")
	}
	keyDir := t.TempDir()
	priv, pub, err := selfupdate.GenerateKey()
	must(t, err)
	key := filepath.Join(keyDir, "release.key")
	must(t, os.WriteFile(key, []byte(priv), 0o600))
	v1, _ := release(t, "1.0.0", key)
	v2, sig2 := release(t, "2.0.0", key)
	broken := brokenBinary(t)

	ts := startServer(t, serverSpec{})
	v2name := "exec-agent_2.0.0_linux_" + runtime.GOARCH
	ts.putPackage(t, v2name, v2)
	ts.putPackage(t, "exec-agent_2.0.1-broken_linux_"+runtime.GOARCH, broken)

	t.Run("canary v1 to v2", func(t *testing.T) {
		var agents []*supervisedAgent
		var ids []string
		for i := range 3 {
			a := startSupervised(t, ts, v1, fmt.Sprintf("u%d", i), pub)
			agents, ids = append(agents, a), append(ids, a.id)
		}
		for _, id := range ids {
			if v := ts.versions(t)[id]; v != "1.0.0" {
				t.Fatalf("%s runs %q before the upgrade, want 1.0.0", id, v)
			}
		}
		id := ts.upgrade(t, map[string]any{"selector": map[string]any{"ids": ids}, "agent_type": "exec-agent",
			"version": "2.0.0", "signatures": map[string]string{v2name: sig2}, "canary": 1, "concurrency": 1,
			"max_errors": 0, "deadline": 30, "stay": 2})
		v := ts.waitTask(t, id, 3*time.Minute)
		if v.State != "done" || v.Kind != "upgrade" || v.Summary.OK != 3 {
			t.Fatalf("upgrade task: %+v", v)
		}
		for _, r := range v.Agents {
			if r.State != "ok" || !strings.Contains(r.Msg, "upgraded from 1.0.0 to 2.0.0") {
				t.Errorf("%s: %s %q", r.Agent, r.State, r.Msg)
			}
		}
		vs := ts.versions(t)
		for _, a := range agents {
			if vs[a.id] != "2.0.0" {
				t.Errorf("%s: /api/agents says version %q, want 2.0.0", a.id, vs[a.id])
			}
			if fileSHA(t, a.exe) != fileSHA(t, v2) || fileSHA(t, selfupdate.PrevPath(a.exe)) != fileSHA(t, v1) {
				t.Errorf("%s: the installed binary is not v2 or the kept one is not v1", a.id)
			}
		}
	})

	t.Run("broken v2 rolled back", func(t *testing.T) {
		a := startSupervised(t, ts, v1, "ub", pub)
		bname := "exec-agent_2.0.1-broken_linux_" + runtime.GOARCH
		sum, err := hex.DecodeString(fileSHA(t, broken))
		must(t, err)
		k, err := selfupdate.ReadPrivateKey(key)
		must(t, err)
		start := time.Now()
		id := ts.upgrade(t, map[string]any{"selector": map[string]any{"ids": []string{a.id}}, "agent_type": "exec-agent",
			"package": bname, "signature": selfupdate.Sign(k, sum), "deadline": 15, "stay": 2})
		v := ts.waitTask(t, id, 90*time.Second)
		took := time.Since(start)
		if v.State != "failed" || len(v.Agents) != 1 || v.Agents[0].State != "failed" || !strings.Contains(v.Agents[0].Msg, "rolled back") {
			t.Fatalf("task: %+v", v)
		}
		if took > 60*time.Second {
			t.Errorf("rolled back after %s, want within 60 s", took)
		}
		eventually.Within(t, 30*time.Second, "ub back on 1.0.0", func() bool { return ts.versions(t)[a.id] == "1.0.0" })
		if fileSHA(t, a.exe) != fileSHA(t, v1) {
			t.Error("the installed binary is not v1 after the rollback")
		}
		t.Logf("broken upgrade failed and rolled back in %s: %s", took.Round(time.Second), v.Agents[0].Msg)
	})

	t.Run("re-exec without a service manager", func(t *testing.T) {
		a, path := install(t, ts, v1, "ux", pub, "exec")
		p, err := servertest.StartProc(servertest.ProcOptions{Name: a.id, Args: []string{a.exe, "--conf", path, "run"}, Dir: a.dir,
			Log: filepath.Join(a.dir, "stdout.log")})
		must(t, err)
		t.Cleanup(func() {
			_ = p.Stop(syscall.SIGTERM)
			if t.Failed() {
				t.Logf("ux output:\n%s", p.Tail(50))
			}
		})
		ts.waitOnline(a.id)
		v := ts.waitTask(t, ts.upgrade(t, map[string]any{"selector": map[string]any{"ids": []string{a.id}}, "agent_type": "exec-agent",
			"version": "2.0.0", "signatures": map[string]string{v2name: sig2}, "deadline": 30, "stay": 2}), 2*time.Minute)
		if v.State != "done" || len(v.Agents) != 1 || v.Agents[0].State != "ok" {
			t.Fatalf("task: %+v", v)
		}
		if vs := ts.versions(t); vs[a.id] != "2.0.0" {
			t.Errorf("version %q, want 2.0.0", vs[a.id])
		}
		if !p.Running() {
			t.Error("the process the test started is gone: exec should have kept its pid")
		}
	})

	t.Run("unsigned or wrongly signed refused", func(t *testing.T) {
		a := startSupervised(t, ts, v1, "us", pub)
		otherPriv, _, err := selfupdate.GenerateKey()
		must(t, err)
		other := filepath.Join(keyDir, "other.key")
		must(t, os.WriteFile(other, []byte(otherPriv), 0o600))
		ok, err := selfupdate.ReadPrivateKey(other)
		must(t, err)
		sum, err := hex.DecodeString(fileSHA(t, v2))
		must(t, err)
		for _, c := range []struct {
			name, sig, want string
		}{
			{"unsigned", "", "binary is not signed"},
			{"other key", selfupdate.Sign(ok, sum), "signature does not verify"},
		} {
			body := map[string]any{"selector": map[string]any{"ids": []string{a.id}}, "agent_type": "exec-agent", "package": v2name}
			if c.sig != "" {
				body["signature"] = c.sig
			}
			v := ts.waitTask(t, ts.upgrade(t, body), time.Minute)
			if v.State != "failed" || len(v.Agents) != 1 || !strings.Contains(v.Agents[0].Msg, c.want) || !strings.Contains(v.Agents[0].Msg, "nothing swapped") {
				t.Errorf("%s: task %+v, want failed with %q", c.name, v, c.want)
			}
			if fileSHA(t, a.exe) != fileSHA(t, v1) {
				t.Fatalf("%s: the binary changed", c.name)
			}
			for _, p := range []string{selfupdate.PrevPath(a.exe), selfupdate.StagedPath(a.exe)} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s: %s exists", c.name, p)
				}
			}
			if vs := ts.versions(t); vs[a.id] != "1.0.0" {
				t.Errorf("%s: version %q", c.name, vs[a.id])
			}
		}
	})
}
