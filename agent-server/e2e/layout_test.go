//go:build unix

package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/internal/layout/layouttest"
)

func mainYAML(steps string) layouttest.Entry {
	return layouttest.Entry{Name: "main.yaml", Body: "name: test\ntimeout: 60\ntasks:\n" + steps}
}

// runLayout posts a layout; fields are form values ("ids" may repeat).
func (ts *testServer) runLayout(t *testing.T, archive []byte, fields ...string) envelope {
	t.Helper()
	resp, err := ts.client.Do(ts.layoutRequest(opToken, "layout.tar", archive, fields...))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	e := envelope{status: resp.StatusCode, body: b}
	_ = json.Unmarshal(b, &e)
	return e
}

// layoutRequest is a POST /api/layout/run with token: the form fields
// (name, value, …) and, when archive is not nil, the archive as file name.
func (ts *testServer) layoutRequest(token, name string, archive []byte, fields ...string) *http.Request {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = mw.WriteField(fields[i], fields[i+1])
	}
	if archive != nil {
		fw, _ := mw.CreateFormFile("file", name)
		_, _ = fw.Write(archive)
	}
	_ = mw.Close()
	req, _ := http.NewRequest("POST", ts.url+"/api/layout/run", &body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}

type layoutStatus struct {
	State         string `json:"state"`
	Msg           string `json:"msg"`
	Done          bool   `json:"done"`
	Created       int64  `json:"created"`
	Finished      int64  `json:"finished"`
	TotalCount    int    `json:"total_count"`
	FinishedCount int    `json:"finished_count"`
	Nodes         []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		OK    bool   `json:"ok"`
		Msg   string `json:"msg"`
		Steps []struct {
			Name    string `json:"name"`
			OK      bool   `json:"ok"`
			Skipped bool   `json:"skipped"`
			Code    int    `json:"code"`
			Output  string `json:"output"`
			Msg     string `json:"msg"`
		} `json:"steps"`
	} `json:"nodes"`
}

func (ts *testServer) layoutDone(t *testing.T, e envelope) (string, layoutStatus) {
	t.Helper()
	if e.status != 200 {
		t.Fatalf("layout run: %d %s", e.status, e.Msg)
	}
	var id string
	_ = json.Unmarshal(e.Payload, &id)
	var st layoutStatus
	eventually.Within(t, 30*time.Second, "layout "+id+" done", func() bool {
		g := ts.get("/api/layout/" + id)
		if g.status != 200 {
			t.Fatalf("get layout: %d %s", g.status, g.Msg)
		}
		st = layoutStatus{}
		_ = json.Unmarshal(g.Payload, &st)
		return st.Done
	})
	return id, st
}

func readLines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
}

func TestLayoutModes(t *testing.T) {
	ts, x, ids := fleet(t, 4)
	dir := t.TempDir()
	// Each step writes s<idx>, waits until as many steps have started as
	// the mode runs at once (its wave: all 4 in parallel, 2 per parity in
	// evenodd, itself in sequence; at most 30 s), then writes e<idx>. No
	// sleep decides the order: a mode that runs fewer at once than it
	// should shows in the order of the marks.
	for _, c := range []struct {
		mode string
		wave string // how many s lines a step waits for (shell arithmetic)
		want func(events []string) error
	}{
		{"sequence", "$IDX + 1", func(ev []string) error {
			if strings.Join(ev, " ") != "s0 e0 s1 e1 s2 e2 s3 e3" {
				return fmt.Errorf("order %v", ev)
			}
			return nil
		}},
		{"evenodd", "$IDX % 2 * 2 + 2", func(ev []string) error {
			pos := map[string]int{}
			for i, e := range ev {
				pos[e] = i
			}
			for _, even := range []string{"e0", "e2"} {
				for _, odd := range []string{"s1", "s3"} {
					if pos[even] > pos[odd] {
						return fmt.Errorf("odd %s before even %s ended: %v", odd, even, ev)
					}
				}
			}
			if pos["s2"] > pos["e0"] || pos["s3"] > pos["e1"] {
				return fmt.Errorf("a wave did not run in parallel: %v", ev)
			}
			return nil
		}},
		{"parallel", "4", func(ev []string) error {
			for _, e := range ev[:4] {
				if !strings.HasPrefix(e, "s") {
					return fmt.Errorf("not all started before the first end: %v", ev)
				}
			}
			return nil
		}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			log := filepath.Join(dir, c.mode)
			cmd := fmt.Sprintf(`echo s$IDX >> %[1]s; for n in $(seq 300); do [ $(grep -c ^s %[1]s) -ge $((%[2]s)) ] && break; sleep 0.1; done; echo e$IDX >> %[1]s`, log, c.wave)
			tar := layouttest.Tar(t, c.mode == "parallel", mainYAML(fmt.Sprintf("  - {name: mark, plugin: exec, cmd: '%s'}\n", cmd)))
			_, st := ts.layoutDone(t, ts.runLayout(t, tar, "ids", strings.Join(ids, ","), "mode", c.mode))
			if st.State != "done" || st.FinishedCount != 4 || st.TotalCount != 4 || st.Finished == 0 {
				t.Fatalf("%+v", st)
			}
			if err := c.want(readLines(t, log)); err != nil {
				t.Fatal(err)
			}
		})
	}
	if x.peak.Load() < 4 {
		t.Fatalf("parallel mode never ran 4 at once (peak %d)", x.peak.Load())
	}
}

func TestLayoutContinue(t *testing.T) {
	ts, _, ids := fleet(t, 4)
	tar := layouttest.Tar(t, false, mainYAML("  - {name: check, plugin: exec, cmd: 'test $IDX != 1'}\n  - {name: after, plugin: exec, cmd: 'echo after'}\n"))
	_, st := ts.layoutDone(t, ts.runLayout(t, tar, "ids", ids[0], "ids", ids[1], "ids", ids[2]+","+ids[3], "continue", "false"))
	states := []string{}
	for _, n := range st.Nodes {
		states = append(states, n.State)
	}
	if st.State != "failed" || strings.Join(states, " ") != "ok failed skipped skipped" {
		t.Fatalf("continue=false: %v %+v", states, st)
	}
	n1 := st.Nodes[1]
	if n1.Steps[0].Code != 1 || n1.Steps[0].OK || !n1.Steps[1].Skipped || n1.Steps[1].Msg != "an earlier step failed" {
		t.Fatalf("failed node steps %+v", n1.Steps)
	}
	if st.Nodes[2].Msg != "not started: an earlier agent failed (continue is false)" {
		t.Fatalf("skipped node msg %q", st.Nodes[2].Msg)
	}
	_, st = ts.layoutDone(t, ts.runLayout(t, tar, "ids", strings.Join(ids, ","), "continue", "true"))
	states = states[:0]
	for _, n := range st.Nodes {
		states = append(states, n.State)
	}
	if strings.Join(states, " ") != "ok failed ok ok" || st.Nodes[3].Steps[1].Output != "after\n" {
		t.Fatalf("continue=true: %v %+v", states, st)
	}
}

func TestLayoutStepsVariablesFiles(t *testing.T) {
	ts, _, _ := fleet(t, 2)
	dir := t.TempDir()
	src := filepath.Join(dir, "agent-file.log")
	if err := os.WriteFile(src, []byte("log line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := fmt.Sprintf(`  - {name: count, plugin: exec, cmd: 'echo "  5 "', output: n}
  - {name: big, plugin: exec, cmd: 'echo big $n', if: $n > 3}
  - {name: small, plugin: exec, cmd: 'echo small', if: $n < 3}
  - {name: even only, plugin: exec, cmd: 'echo even $ID', if: $EVEN = 1}
  - {name: push, plugin: file, action: push, src: conf/site.conf, dst: '%s/site-$ID.conf', mode: "0600"}
  - {name: pull, plugin: file, action: pull, src: '%s', dst: 'logs/$ID.log'}
  - {name: deadline, plugin: exec, cmd: 'test $DEADLINE -gt 1700000000 && echo $$HOME | grep -q /'}
`, dir, src)
	tar := layouttest.Tar(t, true, mainYAML(steps), layouttest.Entry{Name: "conf/site.conf", Body: "server {}\n"})
	id, st := ts.layoutDone(t, ts.runLayout(t, tar, "ids", "x0,x1", "mode", "parallel"))
	if st.State != "done" {
		t.Fatalf("%+v", st)
	}
	for i, n := range st.Nodes {
		s := n.Steps
		if !n.OK || s[1].Output != "big 5\n" || !s[2].Skipped || s[2].Msg != "if $n < 3 is false" {
			t.Fatalf("node %s: %+v", n.ID, n)
		}
		if (i == 0) != (s[3].Output == "even x0\n") || (i == 1) != s[3].Skipped {
			t.Fatalf("node %s even step: %+v", n.ID, s[3])
		}
		b, err := os.ReadFile(filepath.Join(dir, "site-"+n.ID+".conf"))
		fi, _ := os.Stat(filepath.Join(dir, "site-"+n.ID+".conf"))
		if err != nil || string(b) != "server {}\n" || fi.Mode().Perm() != 0o600 {
			t.Fatalf("pushed file of %s: %q %v", n.ID, b, err)
		}
		g := ts.get("/api/layout/" + id + "/file?agent=" + n.ID + "&path=logs/" + n.ID + ".log")
		if g.status != 200 || string(g.body) != "log line\n" {
			t.Fatalf("pulled file of %s: %d %q", n.ID, g.status, g.body)
		}
		if !s[6].OK {
			t.Fatalf("deadline step: %+v", s[6])
		}
	}
	if g := ts.get("/api/layout/" + id + "/file?agent=x0&path=../x"); g.status != 400 {
		t.Fatalf("escaping path: %d %s", g.status, g.Msg)
	}
	e := ts.get("/api/audit?action=" + urlQuery("POST /api/layout/run"))
	if !strings.Contains(string(e.Payload), `"target":"`+id+`"`) {
		t.Fatalf("audit: %s", e.body)
	}
}

func TestLayoutTimeoutAndCancel(t *testing.T) {
	ts, x, ids := fleet(t, 3)
	// A step's timeout ends it as timed_out.
	tar := layouttest.Tar(t, false, mainYAML("  - {name: slow, plugin: exec, cmd: 'sleep 30', timeout: 1}\n"))
	_, st := ts.layoutDone(t, ts.runLayout(t, tar, "ids", "x0"))
	if st.Nodes[0].State != "timed_out" || !strings.Contains(st.Nodes[0].Msg, `step 1 "slow" timed_out`) {
		t.Fatalf("timeout: %+v", st.Nodes[0])
	}
	eventually.Within(t, 30*time.Second, "timed-out command gone", func() bool { return x.cur.Load() == 0 })
	// Cancel mid-run: the running command is killed, the rest never starts.
	started := x.started.Load()
	tar = layouttest.Tar(t, false, mainYAML("  - {name: slow, plugin: exec, cmd: 'sleep 30'}\n"))
	e := ts.runLayout(t, tar, "ids", strings.Join(ids, ","))
	var id string
	_ = json.Unmarshal(e.Payload, &id)
	eventually.Within(t, 30*time.Second, "first command running", func() bool { return x.cur.Load() == 1 })
	if c := ts.do("DELETE", "/api/layout/"+id, opToken, nil); c.status != 200 {
		t.Fatalf("cancel: %d %s", c.status, c.Msg)
	}
	_, st = ts.layoutDone(t, envelope{status: 200, Payload: json.RawMessage(`"` + id + `"`)})
	eventually.Within(t, 30*time.Second, "killed command gone", func() bool { return x.cur.Load() == 0 })
	if st.State != "cancelled" || x.started.Load()-started != 1 || st.Nodes[0].OK || st.Nodes[1].State != "skipped" || st.Nodes[2].State != "skipped" {
		t.Fatalf("cancel: %+v (started %d)", st, x.started.Load()-started)
	}
	if !strings.Contains(st.Nodes[0].Steps[0].Msg, "killed: task cancelled") {
		t.Fatalf("killed step: %+v", st.Nodes[0].Steps[0])
	}
}

func TestLayoutMalformed(t *testing.T) {
	ts, x, _ := fleet(t, 1)
	startAgent(t, ts.addr, agentSpec{name: "metrics-agent", id: "m1"})
	ts.waitOnline("m1")
	ok := layouttest.Tar(t, false, mainYAML("  - {name: a, plugin: exec, cmd: 'true'}\n"))
	for _, c := range []struct {
		name   string
		tar    []byte
		fields []string
		status int
		msg    string
	}{
		{"not a tar", []byte(strings.Repeat("garbage!", 100)), nil, 400, "file: not a tar, tar.gz, tar.bz2 or zip archive"},
		{"no main", layouttest.Tar(t, false, layouttest.Entry{Name: "x.conf", Body: "x"}), nil, 400, "file: the archive has no main.yaml or main.json"},
		{"bad yaml", layouttest.Tar(t, false, layouttest.Entry{Name: "main.yaml", Body: "tasks: ["}), nil, 400, "main.yaml: line 1: did not find expected node content"},
		{"unknown plugin", layouttest.Tar(t, false, mainYAML("  - {name: a, plugin: exec, cmd: 'true'}\n  - {name: get it, plugin: http, cmd: x}\n")), nil, 400, `step 2 "get it": unknown plugin "http" (want exec or file)`},
		{"missing src", layouttest.Tar(t, false, mainYAML("  - {name: copy, plugin: file, dst: /tmp/x}\n")), nil, 400, `step 1 "copy": missing src`},
		{"src escapes", layouttest.Tar(t, false, mainYAML("  - {name: copy, plugin: file, src: ../../etc/passwd, dst: /tmp/x}\n")), nil, 400, `step 1 "copy": src "../../etc/passwd" escapes the archive`},
		{"absolute src", layouttest.Tar(t, false, mainYAML("  - {name: copy, plugin: file, src: /etc/passwd, dst: /tmp/x}\n")), nil, 400, `step 1 "copy": src "/etc/passwd" must be relative to the archive root`},
		{"src is a link", layouttest.Tar(t, true, mainYAML("  - {name: copy, plugin: file, src: l, dst: /tmp/x}\n"), layouttest.Entry{Name: "l", Body: "shadow.conf", Type: tar.TypeSymlink}), nil, 400, `step 1 "copy": src "l" is a link in the archive (links are ignored)`},
		{"link out of the archive", layouttest.Tar(t, true, mainYAML("  - {name: a, plugin: exec, cmd: 'true'}\n"), layouttest.Entry{Name: "l", Body: "/etc/shadow", Type: tar.TypeSymlink}), nil, 400, `file: "l": symlink to an absolute path ("/etc/shadow")`},
		{"unknown variable", layouttest.Tar(t, false, mainYAML("  - {name: a, plugin: exec, cmd: 'echo $HOME'}\n")), nil, 400, `step 1 "a": cmd: unknown variable $HOME`},
		{"bad mode", ok, []string{"mode", "random"}, 400, `mode: "random" is not sequence, parallel or evenodd`},
		{"bad continue", ok, []string{"continue", "maybe"}, 400, "invalid parameter continue: must be true or false"},
		{"bad max_errors", ok, []string{"max_errors", "5x"}, 400, "invalid parameter max_errors: must be N or N%"},
		{"no file", nil, nil, 400, "missing parameter file"},
		{"no ids", ok, []string{"ids", ""}, 400, "missing parameter ids"},
		{"offline agent", ok, []string{"ids", "x0,ghost"}, 404, "not found: agent ghost"},
		{"wrong type", ok, []string{"ids", "m1"}, 424, "invalid agent type want [exec-agent] got [metrics-agent] (agent m1)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fields := c.fields
			if len(fields) == 0 || fields[0] != "ids" {
				fields = append([]string{"ids", "x0"}, fields...)
			}
			e := ts.runLayout(t, c.tar, fields...)
			if e.status != c.status || e.Msg != c.msg {
				t.Fatalf("got %d %q\nwant %d %q", e.status, e.Msg, c.status, c.msg)
			}
		})
	}
	if x.started.Load() != 0 {
		t.Fatalf("a rejected layout ran %d commands", x.started.Load())
	}
}

func TestLayoutRestartMarkedFailed(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir})
	x := newExecSim()
	x.startExecAgent(t, ts.addr, "x0")
	ts.waitOnline("x0")
	tar := layouttest.Tar(t, false, mainYAML("  - {name: first, plugin: exec, cmd: 'sleep 1'}\n  - {name: second, plugin: exec, cmd: 'true'}\n"))
	e := ts.runLayout(t, tar, "ids", "x0")
	var id string
	_ = json.Unmarshal(e.Payload, &id)
	eventually.Within(t, 30*time.Second, "first step running", func() bool { return x.cur.Load() == 1 })
	addr := ts.addr
	ts.stop()
	ts2 := startServer(t, serverSpec{dataDir: dir, addr: addr})
	g := ts2.get("/api/layout/" + id)
	var st layoutStatus
	_ = json.Unmarshal(g.Payload, &st)
	if st.State != "failed" || !st.Done || !strings.HasPrefix(st.Msg, "the server restarted while the layout ran: layouts are not resumed") {
		t.Fatalf("%+v", st)
	}
	n := st.Nodes[0]
	if n.State != "lost" || n.Steps[0].Msg == "" || n.Steps[1].Skipped != true || n.Steps[1].Msg != "not started: the server restarted" {
		t.Fatalf("node %+v", n)
	}
}
