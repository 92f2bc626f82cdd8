package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/servertest"
)

// The install routes end to end: the real server (in process) and the
// real exec-agent binary, real dpkg in a temporary root, a tar.gz of the
// server's package repository, a checksum mismatch, a host killed
// mid-install, and the bad requests.

// installStatus is the payload of GET /api/install/status.
type installStatus struct {
	ID      string          `json:"id"`
	State   string          `json:"state"`
	Done    bool            `json:"done"`
	Actions []installAction `json:"actions"`
	Hosts   []struct {
		Agent, State, Msg string
		Done              bool
		Actions           []installAction
	} `json:"hosts"`
}

type installAction struct {
	Action string `json:"action"`
	Name   string `json:"name"`
	Time   int64  `json:"time"`
	OK     bool   `json:"ok"`
	Msg    string `json:"msg"`
}

// buildDeb makes a .deb with dpkg-deb (the real tool, as the host's dpkg
// reads it) holding dst with body, and an optional postinst script.
func buildDeb(t *testing.T, name, dst, body, postinst string) []byte {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	root := filepath.Join(t.TempDir(), name)
	write := func(p, s string, mode os.FileMode) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("DEBIAN/control", fmt.Sprintf("Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: tests <t@example.com>\nDescription: install e2e\n", name), 0o644)
	if postinst != "" {
		write("DEBIAN/postinst", postinst, 0o755)
	}
	write(dst, body, 0o644)
	out := root + ".deb"
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tarGz makes a tar.gz of files (name → content).
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o640, Size: int64(len(body)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dpkgRoot is an empty dpkg root and the agent's install.dpkg_args for it.
func dpkgRoot(t *testing.T) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed")
	}
	root := t.TempDir()
	for _, d := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, "--root=" + root + " --force-script-chrootless --force-not-root --log=/dev/null"
}

// installAgent is the exec-agent binary as a process the test can kill.
type installAgent struct {
	t        *testing.T
	ts       *testServer
	bin, id  string
	conf     string
	proc     *servertest.Proc
	stdout   string
	stopped  bool
	stateDir string
}

func startInstallAgent(t *testing.T, ts *testServer, bin, id, extra string) *installAgent {
	t.Helper()
	return startInstallAgentIn(t, ts, bin, id, extra, t.TempDir(), ts.addr)
}

// startInstallAgentIn is startInstallAgent with the agent's files (config,
// state, install journals and work directory) under base, connecting to
// server (host:port: the test server's, or a proxy to it).
func startInstallAgentIn(t *testing.T, ts *testServer, bin, id, extra, base, server string) *installAgent {
	t.Helper()
	dir := filepath.Join(base, id)
	if err := os.MkdirAll(filepath.Join(dir, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("basic.id = %s\nbasic.server = %s\nbasic.token = %s\nbasic.log.target = stdout\nbasic.log.level = debug\nbasic.monitor.enabled = false\n%s",
		id, server, agentToken, extra)
	a := &installAgent{t: t, ts: ts, bin: bin, id: id, conf: filepath.Join(dir, "conf", "agent.conf"), stdout: filepath.Join(dir, "stdout.log"), stateDir: dir}
	if err := os.WriteFile(a.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	a.start()
	t.Cleanup(func() {
		if !a.stopped {
			_ = a.proc.Stop(syscall.SIGTERM)
		}
		if t.Failed() {
			if b, err := os.ReadFile(a.stdout); err == nil {
				t.Logf("%s:\n%s", id, tail(b, 8000))
			}
		}
	})
	return a
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (a *installAgent) start() {
	a.t.Helper()
	p, err := servertest.StartProc(servertest.ProcOptions{Name: a.id, Args: []string{a.bin, "--conf", a.conf, "run"}, Log: a.stdout})
	if err != nil {
		a.t.Fatal(err)
	}
	a.proc, a.stopped = p, false
	a.ts.waitOnline(a.id)
}

// checkAllOK fails unless the install's actions are want, each ok with no
// message and a time.
func checkAllOK(t *testing.T, st installStatus, want ...string) {
	t.Helper()
	if len(st.Actions) != len(want) {
		t.Fatalf("actions %+v, want %v", st.Actions, want)
	}
	for i, a := range st.Actions {
		if a.Action != want[i] || !a.OK || a.Msg != "" || a.Time == 0 {
			t.Errorf("action %d: %+v, want %s ok", i, a, want[i])
		}
	}
}

// install posts /api/install/run and returns the task id.
func (ts *testServer) install(t *testing.T, body map[string]any) string {
	t.Helper()
	e := ts.json("POST", "/api/install/run", body)
	var p struct{ ID string }
	if e.status != 200 || json.Unmarshal(e.Payload, &p) != nil || p.ID == "" {
		t.Fatalf("install run: %d %s", e.status, e.body)
	}
	return p.ID
}

// installDone waits for an install's end and returns its status.
func (ts *testServer) installDone(t *testing.T, id string, within time.Duration) installStatus {
	t.Helper()
	var st installStatus
	eventually.Within(t, within, "install "+id+" done", func() bool {
		e := ts.get("/api/install/status?task_id=" + id)
		if e.status != 200 {
			t.Fatalf("install status: %d %s", e.status, e.body)
		}
		st = installStatus{}
		if err := json.Unmarshal(e.Payload, &st); err != nil {
			t.Fatal(err)
		}
		return st.Done
	})
	return st
}

func TestInstallEndToEnd(t *testing.T) {
	root, dpkgArgs := dpkgRoot(t)
	deb := buildDeb(t, "agentfleet-e2e-app", "/opt/e2e-app/hello.txt", "hello from the deb\n", "")
	pkg := tarGz(t, map[string]string{"app/bin/run.sh": "#!/bin/sh\necho run\n", "app/README": "readme\n"})

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/app.deb":
			_, _ = w.Write(deb)
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()

	ts := startServer(t, serverSpec{})
	// The tar.gz goes to the server's package repository.
	if e := ts.do("PUT", "/api/packages/app-1.0.tar.gz", opToken, bytes.NewReader(pkg)); e.status != 200 && e.status != 201 {
		t.Fatalf("upload to the repository: %d %s", e.status, e.body)
	}
	bin := buildAgent(t, t.TempDir(), "exec-agent")
	startInstallAgent(t, ts, bin, "inst-1", "install.dpkg_args = "+dpkgArgs+"\n")

	t.Run("deb from url", func(t *testing.T) {
		id := ts.install(t, map[string]any{"id": "inst-1", "url": web.URL + "/app.deb", "sha256": sum256(deb), "kind": "deb"})
		st := ts.installDone(t, id, 60*time.Second)
		checkAllOK(t, st, "download", "install", "done")
		if st.Actions[0].Name != web.URL+"/app.deb" || st.Actions[2].Name != id {
			t.Errorf("names: %+v", st.Actions)
		}
		// The seed's body: done and actions with every key present.
		e := ts.get("/api/install/status?task_id=" + id)
		for _, key := range []string{`"done":true`, `"action":"download"`, `"name":`, `"time":`, `"ok":true`, `"msg":""`} {
			if !strings.Contains(string(e.Payload), key) {
				t.Errorf("status body lacks %s: %s", key, e.Payload)
			}
		}
		if b, err := os.ReadFile(filepath.Join(root, "opt/e2e-app/hello.txt")); err != nil || string(b) != "hello from the deb\n" {
			t.Errorf("installed file: %q %v", b, err)
		}
		if out, err := exec.Command("dpkg", "--root="+root, "-s", "agentfleet-e2e-app").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("Status: install ok installed")) {
			t.Errorf("dpkg -s: %v\n%s", err, out)
		}
		// The task holds the host's log too.
		e = ts.get("/api/tasks/" + id)
		if e.status != 200 || !strings.Contains(string(e.Payload), `"actions":[{"action":"download"`) || strings.Contains(string(e.Payload), `"pass"`) {
			t.Errorf("task view: %d %s", e.status, e.Payload)
		}
		// Nobody followed the task: its output (the action log, one JSON
		// action per line) is at the output route, as big as output_bytes says.
		out := ts.get("/api/tasks/" + id + "/agents/inst-1/output")
		lines := strings.Split(strings.TrimSuffix(string(out.body), "\n"), "\n")
		if out.status != 200 || len(lines) != 3 || out.header.Get("X-Output-Bytes") != fmt.Sprint(len(out.body)) ||
			!strings.Contains(string(e.Payload), fmt.Sprintf(`"output_bytes":%d`, len(out.body))) {
			t.Fatalf("output: %d %q %v; task %s", out.status, out.body, out.header, e.Payload)
		}
		for i, want := range []string{"download", "install", "done"} {
			var a struct {
				N      int
				Action string
			}
			if json.Unmarshal([]byte(lines[i]), &a) != nil || a.N != i || a.Action != want {
				t.Errorf("output line %d: %q, want action %d %s", i, lines[i], i, want)
			}
		}
	})

	t.Run("tar.gz from the repository", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "app")
		id := ts.install(t, map[string]any{"id": "inst-1", "uri": "app-1.0.tar.gz", "dir": dir})
		st := ts.installDone(t, id, 60*time.Second)
		last := st.Actions[len(st.Actions)-1]
		if !last.OK || last.Action != "done" {
			t.Fatalf("install: %+v", st.Actions)
		}
		files := 0
		for _, a := range st.Actions {
			if a.Action == "file" {
				files++
			}
		}
		if st.Actions[0].Action != "download" || st.Actions[0].Name != "app-1.0.tar.gz" || files != 2 {
			t.Errorf("actions: %+v", st.Actions)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "app/bin/run.sh")); err != nil || !strings.Contains(string(b), "echo run") {
			t.Errorf("unpacked: %q %v", b, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "app/README")); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("README: %v %v", fi, err)
		}
	})

	t.Run("unknown package", func(t *testing.T) {
		e := ts.json("POST", "/api/install/run", map[string]any{"id": "inst-1", "uri": "nope-1.0.deb"})
		if e.status != 404 || !strings.Contains(e.Msg, "nope-1.0.deb") {
			t.Errorf("unknown package: %d %q", e.status, e.Msg)
		}
	})

	t.Run("checksum mismatch", func(t *testing.T) {
		other := buildDeb(t, "agentfleet-e2e-other", "/opt/e2e-other/x", "x\n", "")
		web2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(other) }))
		defer web2.Close()
		id := ts.install(t, map[string]any{"id": "inst-1", "url": web2.URL + "/other.deb", "sha256": strings.Repeat("ab", 32)})
		st := ts.installDone(t, id, 60*time.Second)
		if len(st.Actions) != 2 || st.Actions[0].Action != "download" || st.Actions[0].OK ||
			!strings.Contains(st.Actions[0].Msg, "checksum mismatch") || st.Actions[1].Action != "done" || st.Actions[1].OK {
			t.Fatalf("actions: %+v", st.Actions)
		}
		if st.Hosts[0].State != "failed" {
			t.Errorf("host state %q, want failed", st.Hosts[0].State)
		}
		if _, err := os.Stat(filepath.Join(root, "opt/e2e-other")); err == nil {
			t.Error("the mismatching package was installed")
		}
	})
}

// gatedDeb is a .deb whose postinst waits until the test releases it,
// served over HTTP.
type gatedDeb struct {
	t                 *testing.T
	deb               []byte
	url               string
	started, released string
}

func newGatedDeb(t *testing.T, name string) *gatedDeb {
	t.Helper()
	dir := t.TempDir()
	g := &gatedDeb{t: t, started: filepath.Join(dir, "started"), released: filepath.Join(dir, "release")}
	postinst := fmt.Sprintf("#!/bin/sh\ntouch %s\nwhile [ ! -e %s ]; do sleep 0.1; done\nexit 0\n", g.started, g.released)
	g.deb = buildDeb(t, name, "/opt/"+name+"/x", "x\n", postinst)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(g.deb) }))
	t.Cleanup(web.Close)
	g.url = web.URL + "/" + name + ".deb"
	// An installer still waiting (left by a killed agent) ends at the
	// test's end.
	t.Cleanup(func() { _ = os.WriteFile(g.released, nil, 0o644) })
	return g
}

// waitStarted waits until an installer runs the postinst.
func (g *gatedDeb) waitStarted() {
	g.t.Helper()
	eventually.Within(g.t, 60*time.Second, "the postinst to run", func() bool {
		_, err := os.Stat(g.started)
		return err == nil
	})
}

// release lets the postinst end.
func (g *gatedDeb) release() {
	g.t.Helper()
	if err := os.WriteFile(g.released, nil, 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// A host killed (kill -9) while its installer runs reports the install
// after it restarts: done, not ok, saying where it stopped.
func TestInstallAgentKilled(t *testing.T) {
	_, dpkgArgs := dpkgRoot(t)
	g := newGatedDeb(t, "agentfleet-e2e-slow")

	ts := startServer(t, serverSpec{})
	bin := buildAgent(t, t.TempDir(), "exec-agent")
	a := startInstallAgent(t, ts, bin, "inst-kill", "install.dpkg_args = "+dpkgArgs+"\n")
	id := ts.install(t, map[string]any{"id": "inst-kill", "url": g.url})
	g.waitStarted()
	e := ts.get("/api/install/status?task_id=" + id)
	if !strings.Contains(string(e.Payload), `"action":"download"`) || strings.Contains(string(e.Payload), `"done":true`) {
		t.Errorf("while running: %s", e.Payload)
	}
	if err := a.proc.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.stopped = true
	g.release()
	a.start()
	st := ts.installDone(t, id, 60*time.Second)
	last := st.Actions[len(st.Actions)-1]
	if last.Action != "done" || last.OK || !strings.Contains(last.Msg, "interrupted: the agent stopped while installing") {
		t.Fatalf("after the restart: %+v", st.Actions)
	}
	if st.Hosts[0].State != "failed" || !strings.HasPrefix(st.Hosts[0].Msg, "agent restarted: interrupted") {
		t.Errorf("host: %+v", st.Hosts[0])
	}
}

// Bad requests are refused before anything reaches a host, each naming
// its parameter; an agent that cannot install is a clear 422.
func TestInstallBadRequests(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{id: "old-exec", name: "exec-agent"}) // no install.v1
	startAgent(t, ts.addr, agentSpec{id: "ex-1"})
	ts.waitOnline("old-exec")
	ts.waitOnline("ex-1")
	sum := strings.Repeat("0", 64)
	const run = "/api/install/run"
	checkAPI(t, ts, strings.Contains, []apiCase{
		{"POST", run, `{"url":"https://h/a.deb"}`, 400, "id"},
		{"POST", run, `{"id":"old-exec","selector":{"ids":["old-exec"]},"url":"https://h/a.deb"}`, 400, "id"},
		{"POST", run, `{"id":"old-exec"}`, 400, "uri"},
		{"POST", run, `{"id":"old-exec","uri":"a.deb","url":"https://h/a.deb"}`, 400, "uri"},
		{"POST", run, `{"id":"old-exec","url":"ftp://h/a.deb"}`, 400, "url"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.deb","sha256":"abc"}`, 400, "sha256"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.deb","auth":"doas","user":"u"}`, 400, "auth"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.deb","pass":"$0$x"}`, 400, "auth"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.deb","timeout":86401}`, 400, "timeout"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.deb","timeout":-1}`, 400, "timeout"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.tar.gz"}`, 400, "dir"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.zip","dir":"opt"}`, 400, "dir"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a","kind":"apk"}`, 400, "kind"},
		{"POST", run, `{"id":"old-exec","uri":"../a.deb"}`, 400, "uri"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.deb","passwd":"x"}`, 400, ""},
		{"POST", run, `{"id":"nope","url":"https://h/a.deb","sha256":"` + sum + `"}`, 404, "agent"},
		{"POST", run, `{"id":"ex-1","url":"https://h/a.deb"}`, 424, "exec-agent"},
		{"POST", run, `{"id":"old-exec","url":"https://h/a.deb"}`, 422, "install.v1"},
		{"GET", "/api/install/status", "", 400, "task_id"},
		{"GET", "/api/install/status?task_id=nope", "", 404, "not found"},
	})
	if e := ts.do("POST", run, opToken, strings.NewReader(`{"id":"old-exec","url":"https://h/a.deb","pass":"$0$x"}`)); strings.Contains(string(e.body), "$0$x") {
		t.Errorf("the password is echoed: %s", e.body)
	}
	// Every call is audited, none with the password.
	audit := ts.get("/api/audit?size=100&action=" + strings.ReplaceAll("POST /api/install/run", " ", "%20"))
	if audit.status != 200 || strings.Contains(string(audit.body), "$0$x") || !strings.Contains(string(audit.body), `"pass":true`) ||
		!strings.Contains(string(audit.body), `"url":"https://h/a.deb"`) {
		t.Errorf("audit: %s", audit.body)
	}
}

// A fleet install on a label selector: canary first, one at a time, each
// host's action log streamed as output events while it runs and kept in
// the task.
func TestInstallFleet(t *testing.T) {
	g := newGatedDeb(t, "agentfleet-e2e-fleet")

	ts := startServer(t, serverSpec{})
	bin := buildAgent(t, t.TempDir(), "exec-agent")
	for _, a := range []struct{ id, role string }{{"f-web-1", "web"}, {"f-web-2", "web"}, {"f-db", "db"}} {
		_, args := dpkgRoot(t)
		startInstallAgent(t, ts, bin, a.id, "basic.labels = role="+a.role+"\ninstall.dpkg_args = "+args+"\n")
	}
	e := ts.json("POST", "/api/install/run", map[string]any{
		"selector": map[string]any{"labels": "role=web"}, "url": g.url, "sha256": sum256(g.deb),
		"canary": 1, "concurrency": 1,
	})
	var created struct {
		ID     string
		Agents int
	}
	if e.status != 200 || json.Unmarshal(e.Payload, &created) != nil || created.Agents != 2 {
		t.Fatalf("fleet install: %d %s", e.status, e.body)
	}
	req, _ := http.NewRequest("GET", ts.url+"/api/tasks/"+created.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The canary's installer waits for the release: the stream is open
	// before any host ends.
	g.waitStarted()
	g.release()
	evs := readSSE(t, resp.Body)
	logs := map[string]string{}
	var order []string // agents' final states, then running states, in event order
	for _, ev := range evs {
		agent, _ := ev.data["agent"].(string)
		switch ev.typ {
		case "output":
			logs[agent] += ev.data["data"].(string)
		case "state":
			order = append(order, agent+":"+ev.data["state"].(string))
		}
	}
	if last := evs[len(evs)-1]; last.typ != "done" || last.data["state"] != "done" {
		t.Fatalf("last event %+v", last)
	}
	// The canary's running event may precede the subscription; the
	// second host starts only after the canary's end.
	if len(order) > 0 && strings.HasSuffix(order[0], ":running") {
		order = order[1:]
	}
	if len(order) != 3 || !strings.HasSuffix(order[0], ":ok") || !strings.HasSuffix(order[1], ":running") ||
		!strings.HasSuffix(order[2], ":ok") || order[0][:7] == order[1][:7] || order[1] != strings.TrimSuffix(order[2], ":ok")+":running" {
		t.Errorf("state events %v, want the canary to end before the other host starts", order)
	}
	for _, id := range []string{"f-web-1", "f-web-2"} {
		for _, act := range []string{`"action":"download"`, `"action":"install"`, `"action":"done"`} {
			if !strings.Contains(logs[id], act) {
				t.Errorf("%s: output events lack %s: %q", id, act, logs[id])
			}
		}
	}
	st := ts.installDone(t, created.ID, 30*time.Second)
	if len(st.Hosts) != 2 || len(st.Actions) != 0 {
		t.Fatalf("status: %+v", st)
	}
	for _, h := range st.Hosts {
		if h.State != "ok" || !h.Done || len(h.Actions) != 3 || !h.Actions[2].OK || h.Agent == "f-db" {
			t.Errorf("host %+v", h)
		}
	}
	// The action log is each host's output in the task too, byte for byte
	// what the stream carried: output_bytes its size, head and tail its
	// ends, the output route the log (from an offset with Range), so that
	// a client that missed part of the stream reads it there.
	var view struct {
		Agents []struct {
			Agent       string `json:"agent"`
			OutputHead  string `json:"output_head"`
			OutputTail  string `json:"output_tail"`
			Dropped     int64  `json:"dropped"`
			OutputBytes int64  `json:"output_bytes"`
		} `json:"agents"`
	}
	if e := ts.get("/api/tasks/" + created.ID); e.status != 200 || json.Unmarshal(e.Payload, &view) != nil || len(view.Agents) != 2 {
		t.Fatalf("task: %d %s", e.status, e.body)
	}
	for _, a := range view.Agents {
		log := logs[a.Agent]
		if a.OutputBytes != int64(len(log)) || a.OutputHead+a.OutputTail != log || a.Dropped != 0 {
			t.Errorf("%s in the task: output_bytes %d, head+tail %q, dropped %d; the stream carried %d bytes: %q",
				a.Agent, a.OutputBytes, a.OutputHead+a.OutputTail, a.Dropped, len(log), log)
		}
		out := ts.get("/api/tasks/" + created.ID + "/agents/" + a.Agent + "/output")
		if out.status != 200 || string(out.body) != log || out.header.Get("X-Output-Bytes") != fmt.Sprint(len(log)) {
			t.Errorf("%s output: %d %q (X-Output-Bytes %s), want the streamed %q", a.Agent, out.status, out.body, out.header.Get("X-Output-Bytes"), log)
		}
		req, _ := http.NewRequest("GET", ts.url+"/api/tasks/"+created.ID+"/agents/"+a.Agent+"/output", nil)
		req.Header.Set("Authorization", "Bearer "+opToken)
		req.Header.Set("Range", "bytes=10-")
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 || len(log) < 10 || string(b) != log[10:] {
			t.Errorf("%s output from 10: %d %q", a.Agent, resp.StatusCode, b)
		}
	}
}

// The server restarts while a host installs: the agent's journaled report
// reaches the new server process, which stores the outcome and ends the
// resumed task.
func TestInstallServerRestart(t *testing.T) {
	_, dpkgArgs := dpkgRoot(t)
	g := newGatedDeb(t, "agentfleet-e2e-restart")
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir})
	addr := ts.addr
	bin := buildAgent(t, t.TempDir(), "exec-agent")
	startInstallAgent(t, ts, bin, "inst-rs", "install.dpkg_args = "+dpkgArgs+"\n")
	id := ts.install(t, map[string]any{"id": "inst-rs", "url": g.url, "sha256": sum256(g.deb)})
	g.waitStarted()
	ts.stop()
	g.release() // the install ends while no server runs
	ts2 := startServer(t, serverSpec{dataDir: dir, addr: addr})
	st := ts2.installDone(t, id, 60*time.Second)
	want := []string{"download", "install", "done"}
	if len(st.Actions) != len(want) || st.Hosts[0].State != "ok" {
		t.Fatalf("after the server's restart: %+v", st)
	}
	for i, a := range st.Actions {
		if a.Action != want[i] || !a.OK {
			t.Errorf("action %d: %+v", i, a)
		}
	}
	eventually.Within(t, 30*time.Second, "the resumed task to end", func() bool {
		e := ts2.get("/api/tasks/" + id)
		return strings.Contains(string(e.Payload), `"state":"done"`)
	})
}
