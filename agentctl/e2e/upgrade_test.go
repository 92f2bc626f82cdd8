//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/libagent/selfupdate"

	"github.com/agentfleet/agent-server/servertest"
)

// upgradable is an exec-agent of a test's own, installed in its own folder
// (bin/exec-agent, a copy of the built one; conf/agent.conf) so that an
// upgrade replaces nothing the shared fleet runs. It restarts by exec
// (basic.upgrade.restart = exec): no service manager here.
type upgradable struct {
	id, exe string
	proc    *servertest.Proc
}

func startUpgradable(t *testing.T, id, labels, pub string) *upgradable {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	a := &upgradable{id: id, exe: filepath.Join(dir, "bin", "exec-agent")}
	for _, d := range []string{"bin", "conf"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bins.exec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "conf", "agent.conf")
	c := fmt.Sprintf("basic.id = %s\nbasic.server = %s\nbasic.token = %s\nbasic.labels = %s\nbasic.log.target = stdout\nbasic.monitor.enabled = false\n"+
		"basic.upgrade.public_key = %s\nbasic.upgrade.restart = exec\n", id, fleet.server.Addr, agentToken, labels, pub)
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	a.proc, err = servertest.StartProc(servertest.ProcOptions{Name: id, Args: []string{a.exe, "--conf", conf, "run"}, Dir: dir,
		Log: filepath.Join(dir, "agent.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.proc.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s log:\n%s", id, a.proc.Tail(4000))
			if b, err := os.ReadFile(filepath.Join(dir, "conf", "agent.upgrade.log")); err == nil {
				t.Logf("%s watchdog:\n%s", id, b)
			}
		}
	})
	return a
}

// versions returns the online agents' versions (GET /api/agents).
func versions(t *testing.T) map[string]string {
	t.Helper()
	var list []struct{ ID, Version string }
	if err := fleet.api("GET", "/api/agents?online=true&size=1000", nil, &list); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, a := range list {
		m[a.ID] = a.Version
	}
	return m
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// upgradeRuns numbers the runs of TestUpgrade in this process (go test
// -count=N): the shared server keeps the secret (auth.v1) and the labels
// of every agent it has seen, so each run's agents have ids and labels of
// their own. The same ids with fresh state files would be refused
// ("invalid agent secret"), and the last run's agents, offline, would
// match its selector.
var upgradeRuns atomic.Int32

// TestUpgrade drives agentctl upgrade against the real server and real
// exec-agents: exec-agent 2.0.0 released and signed by .ci/release (the
// helper the server's TestSelfUpdate uses), pushed with agentctl packages
// push, two agents upgraded through a canary task (a line per agent as it
// starts and ends, exit 0, versions in GET /api/agents, the request in the
// task and the audit log), then an unsigned binary refused (exit 1, nothing
// swapped), the server's refusals (exit 1) and bad flags (exit 2).
func TestUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release of exec-agent")
	}
	dir := t.TempDir()
	priv, pub, err := selfupdate.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "release.key")
	if err := os.WriteFile(key, []byte(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(dir, "dist")
	v2, _, err := servertest.Release(servertest.ReleaseOptions{Module: "exec-agent", Version: "2.0.0", Key: key, Dir: dist})
	if err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Base(v2)
	fleet.ok(t, "packages", "push", v2, "-q")
	t.Cleanup(func() { _ = fleet.api("DELETE", "/api/packages/"+pkg, nil, nil) })

	run := upgradeRuns.Add(1)
	u1id, u2id, u3id := fmt.Sprintf("e2e-u1-%d", run), fmt.Sprintf("e2e-u2-%d", run), fmt.Sprintf("e2e-u3-%d", run)
	yes, no := fmt.Sprintf("upg=yes%d", run), fmt.Sprintf("upg=no%d", run)
	agents := []*upgradable{startUpgradable(t, u1id, yes, pub), startUpgradable(t, u2id, yes, pub),
		startUpgradable(t, u3id, no, pub)}
	eventually.Within(t, 60*time.Second, "the upgradable agents online", func() bool {
		vs := versions(t)
		return vs[u1id] != "" && vs[u2id] != "" && vs[u3id] != ""
	})
	from := versions(t)[u1id]
	if from == "2.0.0" {
		t.Fatalf("the built exec-agent is already version %s", from)
	}

	// A canary upgrade of the two agents labelled yes, one at a time.
	r := fleet.ctl(t, ctlOpts{}, "upgrade", "-l", yes, "--type", "exec-agent", "--version", "2.0.0", "--signature", dist,
		"--canary", "1", "--concurrency", "1", "--deadline", "30s", "--stay", "2s")
	m := regexp.MustCompile(`^upgrade (\w+): 2 agent\(s\)\n`).FindStringSubmatch(r.err)
	if r.code != 0 || m == nil {
		t.Fatalf("upgrade: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	id := m[1]
	upgraded := fmt.Sprintf("ok: upgraded from %s to 2.0.0 (%s)", from, pkg)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	var oks []int
	for i, l := range lines {
		if strings.HasSuffix(l, upgraded) {
			oks = append(oks, i)
		}
	}
	host := func(l string) string { h, _, _ := strings.Cut(l, " "); return h }
	if len(oks) != 2 || !strings.HasPrefix(lines[oks[0]], "e2e-u") || host(lines[oks[0]]) == host(lines[oks[1]]) {
		t.Errorf("want a line %q for each agent:\n%s", upgraded, r.out)
	} else if second := host(lines[oks[1]]) + " | running"; !strings.Contains(strings.Join(lines[oks[0]:oks[1]], "\n"), second) {
		// The canary: the second agent starts after the first is up.
		t.Errorf("want %q between the two upgrades:\n%s", second, r.out)
	}
	if !regexp.MustCompile(`task `+id+` done: 2 agent\(s\): 2 ok\n`).MatchString(r.err) || !strings.Contains(r.err, "upgraded from "+from) {
		t.Errorf("results on stderr:\n%s", r.err)
	}
	vs := versions(t)
	for _, a := range agents {
		want := "2.0.0"
		if a.id == u3id {
			want = from
		}
		if vs[a.id] != want {
			t.Errorf("%s runs %q, want %s", a.id, vs[a.id], want)
		}
		if want == "2.0.0" && (!sameFile(t, a.exe, v2) || !a.proc.Running()) {
			t.Errorf("%s: the installed binary is not v2, or the agent is not the process started (exec keeps the pid)", a.id)
		}
	}

	// The request agentctl made, as the server stored and audited it.
	var task struct {
		Kind    string
		Upgrade struct {
			Selector    struct{ Labels string }
			AgentType   string            `json:"agent_type"`
			Version     string            `json:"version"`
			Signatures  map[string]string `json:"signatures"`
			Canary      int               `json:"canary"`
			Concurrency json.RawMessage   `json:"concurrency"`
			Deadline    json.RawMessage   `json:"deadline"`
			Stay        json.RawMessage   `json:"stay"`
		}
	}
	if err := fleet.api("GET", "/api/tasks/"+id, nil, &task); err != nil {
		t.Fatal(err)
	}
	u := task.Upgrade
	if task.Kind != "upgrade" || u.Selector.Labels != yes || u.AgentType != "exec-agent" || u.Version != "2.0.0" || u.Canary != 1 ||
		string(u.Concurrency) != "1" || len(u.Signatures) != 1 || u.Signatures[pkg] == "" {
		t.Errorf("the task's request: %+v", task)
	}
	eventually.Within(t, 10*time.Second, "the audit entry", func() bool {
		var entries []struct {
			Action string
			Detail struct {
				AgentType string `json:"agent_type"`
				Version   string
				Agents    int
			}
		}
		err := fleet.api("GET", "/api/audit?target="+id, nil, &entries)
		return err == nil && len(entries) == 1 && entries[0].Action == "POST /api/agents/upgrade" &&
			entries[0].Detail.AgentType == "exec-agent" && entries[0].Detail.Version == "2.0.0" && entries[0].Detail.Agents == 2
	})

	// The task routes know it: tasks ls (kind), get (the request), watch.
	if r := fleet.ok(t, "tasks", "ls", "--limit", "5"); !regexp.MustCompile(`(?m)^` + id + `\s+upgrade\s+done\s+2\s+2\s`).MatchString(r.out) {
		t.Errorf("tasks ls:\n%s", r.out)
	}
	if r := fleet.ok(t, "tasks", "get", id); !strings.Contains(r.out, `"agent_type":"exec-agent"`) || !regexp.MustCompile(`(?m)^`+u2id+`\s+ok\s`).MatchString(r.out) {
		t.Errorf("tasks get:\n%s", r.out)
	}
	if r := fleet.ok(t, "tasks", "watch", id, "--stream"); strings.Count(r.out, upgraded) != 2 {
		t.Errorf("tasks watch --stream of the finished upgrade:\n%s", r.out)
	}

	// Unsigned: the agent refuses before it writes anything; exit 1.
	u3 := agents[2]
	r = fleet.ctl(t, ctlOpts{}, "upgrade", u3id, "--type", "exec-agent", "--package", pkg, "--deadline", "30s")
	if r.code != 1 || !strings.Contains(r.out, u3id+" | failed: refused by the agent, nothing swapped: ") || !strings.Contains(r.out, "not signed") ||
		!regexp.MustCompile(`task \w+ failed: 1 agent\(s\): 0 ok, 1 failed — 1 of 1 agents not upgraded`).MatchString(r.err) {
		t.Errorf("unsigned: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	if !sameFile(t, u3.exe, bins.exec) {
		t.Errorf("unsigned: %s's binary changed", u3id)
	}
	for _, p := range []string{selfupdate.PrevPath(u3.exe), selfupdate.StagedPath(u3.exe)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("unsigned: %s exists", p)
		}
	}
	// The same, detached and then watched, and with -o json.
	r = fleet.ok(t, "upgrade", u3id, "--type", "exec-agent", "--package", pkg, "--detach")
	detached := strings.TrimSpace(r.out)
	if !regexp.MustCompile(`^\w+$`).MatchString(detached) || !strings.Contains(r.err, "agentctl tasks watch "+detached) {
		t.Fatalf("--detach: %q %q", r.out, r.err)
	}
	if r := fleet.ctl(t, ctlOpts{}, "tasks", "watch", detached); r.code != 1 || !strings.Contains(r.err, "not signed") {
		t.Errorf("watch the detached upgrade: exit %d\n%s", r.code, r.err)
	}
	r = fleet.ctl(t, ctlOpts{}, "upgrade", u3id, "--type", "exec-agent", "--package", pkg, "-o", "json")
	var view struct {
		State  string
		Agents []struct{ Agent, State, Msg string }
	}
	if err := json.Unmarshal([]byte(r.out), &view); r.code != 1 || err != nil || view.State != "failed" || len(view.Agents) != 1 ||
		view.Agents[0].State != "failed" || !strings.Contains(view.Agents[0].Msg, "not signed") {
		t.Errorf("-o json: exit %d %v\n%s\n%s", r.code, err, r.out, r.err)
	}
	checkShape(t, "upgrade", r.out)

	// The server's refusals (exit 1) and bad flags (exit 2, nothing sent).
	missing := fmt.Sprintf("exec-agent_9.9.9_linux_%s", runtime.GOARCH)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{u3id, "--type", "exec-agent", "--package", "nosuch"}, 1, `404: not found: package "nosuch": not in the repository`},
		// A release is looked up per agent (its os and arch): the agent fails.
		{[]string{u3id, "--type", "exec-agent", "--version", "9.9.9"}, 1, u3id + ` | failed: package "` + missing + `": not in the repository`},
		{[]string{u3id, "--type", "metrics-agent", "--version", "2.0.0"}, 1, "invalid agent type want [metrics-agent] got [exec-agent]"},
		{[]string{"-l", "upg=none", "--type", "exec-agent", "--version", "2.0.0"}, 1, "selector: matches no agents of type exec-agent"},
		{[]string{u3id, "--type", "exec-agent", "--version", "2.0.0", "--deadline", "4s", "--stay", "5s"}, 1, "stay: must be shorter than deadline (4s)"},
		{[]string{u3id, "--type", "exec-agent", "--version", "2.0.0", "--package", pkg}, 2, "give --version or --package, not both"},
		{[]string{u3id, "--version", "2.0.0"}, 2, "--type: which type of agent to upgrade"},
		{[]string{u3id, "--type", "exec-agent", "--version", "2.0.0", "--signature", v2}, 2, "want a .sig file named after the binary it signs"},
	} {
		r := fleet.ctl(t, ctlOpts{}, append([]string{"upgrade"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.out+r.err, c.want) {
			t.Errorf("upgrade %s: exit %d, stderr %q; want exit %d with %q", strings.Join(c.args, " "), r.code, r.err, c.code, c.want)
		}
	}
	if vs := versions(t); vs[u3id] != from {
		t.Errorf("%s runs %q after the refusals", u3id, vs[u3id])
	}
}
