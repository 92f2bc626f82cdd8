package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/store"

	"github.com/agentfleet/jkframe/eventually"
)

type runReply struct {
	ID     string `json:"id"`
	Begin  int64  `json:"begin"`
	PID    int    `json:"pid"`
	Result *struct {
		Running     bool   `json:"running"`
		Code        int    `json:"code"`
		Data        []byte `json:"data"`
		State       string `json:"state"`
		Msg         string `json:"msg"`
		Dropped     int64  `json:"dropped"`
		OutputBytes int64  `json:"output_bytes"`
	} `json:"result"`
}

type statusReply struct {
	TaskID string `json:"task_id"`
	Done   bool   `json:"done"`
	Code   int    `json:"code"`
	State  string `json:"state"`
	Msg    string `json:"msg"`
}

func (ts *testServer) json(method, path string, body any) envelope {
	ts.t.Helper()
	b, _ := json.Marshal(body)
	return ts.do(method, path, ts.token, bytes.NewReader(b))
}

func decode[T any](t *testing.T, e envelope) T {
	t.Helper()
	var v T
	if e.status != 200 {
		t.Fatalf("status %d: %s", e.status, e.body)
	}
	if err := json.Unmarshal(e.Payload, &v); err != nil {
		t.Fatalf("payload %s: %v", e.Payload, err)
	}
	return v
}

func (ts *testServer) run(id string, body map[string]any) runReply {
	ts.t.Helper()
	return decode[runReply](ts.t, ts.json("POST", "/api/exec/"+id+"/run", body))
}

func (ts *testServer) waitDone(id string, pid int) statusReply {
	ts.t.Helper()
	var st statusReply
	eventually.Within(ts.t, 30*time.Second, "command done", func() bool {
		st = decode[statusReply](ts.t, ts.get(fmt.Sprintf("/api/exec/%s/status/%d", id, pid)))
		return st.Done
	})
	return st
}

var capSets = []struct {
	name string
	caps []string
}{
	{"v1", nil},
	{"ext", []string{protocol.CapAck, protocol.CapBulk, protocol.CapStream}},
}

func TestExecRun(t *testing.T) {
	for _, cs := range capSets {
		t.Run(cs.name, func(t *testing.T) {
			ts := startServer(t, serverSpec{})
			newFakeExec(t, ts.addr, "x1", cs.caps...)
			ts.waitOnline("x1")

			tests := []struct {
				cmd   string
				code  int
				state string
				msg   string
				data  string
			}{
				{"true", 0, "ok", "", ""},
				{"echo hello", 0, "ok", "", "hello\n"},
				{"exit 3", 3, "failed", "", ""},
				{"legacy-kill", 137, "failed", "killed", ""},
				{"nosuch", 127, "failed", "", "nosuch: command not found\n"},
				{"seq 3", 0, "ok", "", "1\n2\n3\n"},
			}
			for _, tt := range tests {
				rep := ts.run("x1", map[string]any{"cmd": tt.cmd, "pass": "s3cret"})
				r := rep.Result
				if r == nil || rep.PID == 0 || rep.ID == "" || r.Running || r.Code != tt.code || r.State != tt.state || r.Msg != tt.msg || string(r.Data) != tt.data {
					t.Errorf("%s: %+v %+v", tt.cmd, rep, r)
				}
				res, err := ts.srv.Store().GetResult(context.Background(), rep.ID, "x1")
				if err != nil || string(res.State) != tt.state || res.ExitCode != tt.code || res.PID != rep.PID || string(res.OutputHead) != tt.data {
					t.Errorf("%s: stored %+v %v", tt.cmd, res, err)
				}
				task, err := ts.srv.Store().GetTask(context.Background(), rep.ID)
				if err != nil || task.State != store.TaskDone || task.Kind != store.KindExec || task.CreatedBy != "ops" || strings.Contains(string(task.Spec), "s3cret") {
					t.Errorf("%s: task %+v %v", tt.cmd, task, err)
				}
			}

			// Start failure.
			e := ts.json("POST", "/api/exec/x1/run", map[string]any{"cmd": "nostart"})
			if e.status != 503 || e.Msg != `exec: "nostart": executable file not found in $PATH` {
				t.Errorf("nostart: %d %s", e.status, e.body)
			}

			// Async: status, pty.
			rep := ts.run("x1", map[string]any{"cmd": "seq 20000", "result": false})
			if rep.Result != nil || rep.PID == 0 {
				t.Fatalf("async: %+v", rep)
			}
			st := ts.waitDone("x1", rep.PID)
			if st.Code != 0 || st.State != "ok" || st.TaskID != rep.ID {
				t.Errorf("status %+v", st)
			}
			var want strings.Builder
			for i := 1; i <= 20000; i++ {
				fmt.Fprintf(&want, "%d\n", i)
			}
			e = ts.get(fmt.Sprintf("/api/exec/x1/pty/%d", rep.PID))
			if e.status != 200 || string(e.body) != want.String() {
				t.Errorf("pty: %d, %d bytes", e.status, len(e.body))
			}
			if e = ts.get(fmt.Sprintf("/api/exec/x1/pty/%d", rep.PID)); e.status != 200 || len(e.body) != 0 {
				t.Errorf("second pty: %d %q", e.status, e.body)
			}
			out, size, err := ts.srv.Store().ReadOutput(context.Background(), rep.ID, "x1", 0, -1)
			if err != nil || size != int64(want.Len()) || string(out) != want.String() {
				t.Errorf("stored output: %d bytes, %v", size, err)
			}

			// The audit entry has no password.
			audit := ts.get("/api/audit?action=" + strings.ReplaceAll("POST /api/exec/{id}/run", " ", "%20"))
			if audit.status != 200 || strings.Contains(string(audit.body), "s3cret") || !strings.Contains(string(audit.body), `"cmd":"echo hello"`) {
				t.Errorf("audit: %s", audit.body)
			}
		})
	}
}

func TestExecKillPs(t *testing.T) {
	for _, cs := range capSets {
		t.Run(cs.name, func(t *testing.T) {
			ts := startServer(t, serverSpec{})
			newFakeExec(t, ts.addr, "x1", cs.caps...)
			ts.waitOnline("x1")
			rep := ts.run("x1", map[string]any{"cmd": "sleep", "result": false})
			ps := decode[[]struct {
				TaskID string `json:"task_id"`
				PID    int    `json:"pid"`
			}](t, ts.get("/api/exec/x1/ps"))
			if len(ps) != 1 || ps[0].PID != rep.PID || ps[0].TaskID != rep.ID {
				t.Errorf("ps = %+v, want pid %d task %s", ps, rep.PID, rep.ID)
			}
			if st := decode[statusReply](t, ts.get(fmt.Sprintf("/api/exec/x1/status/%d", rep.PID))); st.Done || st.State != "running" {
				t.Errorf("running status %+v", st)
			}
			e := ts.do("DELETE", fmt.Sprintf("/api/exec/x1/kill/%d", rep.PID), opToken, nil)
			if e.status != 200 {
				t.Fatalf("kill: %d %s", e.status, e.body)
			}
			st := ts.waitDone("x1", rep.PID)
			if st.Code != 137 || st.State != "failed" || st.Msg != "killed" {
				t.Errorf("killed status %+v", st)
			}
			if ps := decode[[]any](t, ts.get("/api/exec/x1/ps")); len(ps) != 0 {
				t.Errorf("ps after kill = %v", ps)
			}
			// Timeout: the agent kills at the timeout; 137 then is timed_out.
			r := ts.run("x1", map[string]any{"cmd": "sleep", "timeout": 1})
			if r.Result == nil || r.Result.State != "timed_out" || r.Result.Code != 137 {
				t.Errorf("timeout: %+v", r.Result)
			}
		})
	}
}

func TestExecOutputCap(t *testing.T) {
	ts := startServer(t, serverSpec{mod: func(c *config.Config) { c.Task.OutputCap = 100 }})
	newFakeExec(t, ts.addr, "x1")
	ts.waitOnline("x1")
	rep := ts.run("x1", map[string]any{"cmd": "seq 3000"}) // 13,893 bytes
	var full strings.Builder
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&full, "%d\n", i)
	}
	total := int64(full.Len())
	res, err := ts.srv.Store().GetResult(context.Background(), rep.ID, "x1")
	if err != nil {
		t.Fatal(err)
	}
	f := full.String()
	if res.OutputBytes != total || string(res.OutputHead) != f[:4096] || string(res.OutputTail) != f[len(f)-4096:] || res.Dropped != total-100-4096 {
		t.Errorf("result: bytes %d head %d tail %d dropped %d", res.OutputBytes, len(res.OutputHead), len(res.OutputTail), res.Dropped)
	}
	if size, _ := ts.srv.Store().OutputSize(context.Background(), rep.ID, "x1"); size != 100 {
		t.Errorf("stored %d bytes, want the cap 100", size)
	}
	wantData := f[:100] + fmt.Sprintf("\n[... %d bytes dropped ...]\n", total-100-4096) + f[len(f)-4096:]
	if rep.Result == nil || string(rep.Result.Data) != wantData || rep.Result.Dropped != res.Dropped || rep.Result.OutputBytes != total {
		t.Errorf("reply data %d bytes, want %d", len(rep.Result.Data), len(wantData))
	}
}

func TestExecAgentDrop(t *testing.T) {
	t.Run("ack.v1 result completes after reconnect", func(t *testing.T) {
		ts := startServer(t, serverSpec{})
		fa := newFakeExec(t, ts.addr, "x1", protocol.CapAck, protocol.CapStream)
		ts.waitOnline("x1")
		rep := ts.run("x1", map[string]any{"cmd": "hold", "result": false})
		eventually.Within(t, 30*time.Second, "first output", func() bool {
			res, err := ts.srv.Store().GetResult(context.Background(), rep.ID, "x1")
			return err == nil && string(res.OutputHead) == "before\n"
		})
		fa.waitAcked()
		fa.drop()
		eventually.Within(t, 30*time.Second, "lost while away", func() bool {
			st := decode[statusReply](t, ts.get(fmt.Sprintf("/api/exec/x1/status/%d", rep.PID)))
			return st.State == "lost" && !st.Done
		})
		fa.finish(rep.ID) // ends while disconnected: journaled only
		fa.connect()
		st := ts.waitDone("x1", rep.PID)
		if st.State != "ok" || st.Code != 0 {
			t.Errorf("after replay: %+v", st)
		}
		res, err := ts.srv.Store().GetResult(context.Background(), rep.ID, "x1")
		out, _, _ := ts.srv.Store().ReadOutput(context.Background(), rep.ID, "x1", 0, -1)
		if err != nil || res.State != store.ResultOK || string(out) != "before\nafter\n" {
			t.Errorf("stored %+v %q %v", res, out, err)
		}
		if task, _ := ts.srv.Store().GetTask(context.Background(), rep.ID); task.State != store.TaskDone {
			t.Errorf("task %+v", task)
		}
		fa.waitAcked()
	})
	// The agent restarts (its handlers and their tasks gone) and comes back
	// without the task: the server ends it after the agent's ps, or with
	// the agent's own report of the orphan it killed (exec_done with restarted and msg).
	for _, tc := range []struct {
		name, wantMsg string
		wantCode      int
		report        bool
	}{
		{"agent comes back without the task", "agent reconnected and no longer runs this task", 255, false},
		{"agent reports the orphan it killed", "agent restarted: command killed (pid 1001)", 137, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverSpec{})
			fa := newFakeExec(t, ts.addr, "x1", protocol.CapAck, protocol.CapStream)
			ts.waitOnline("x1")
			rep := ts.run("x1", map[string]any{"cmd": "hold", "result": false})
			fa.waitAcked()
			fa.drop()
			eventually.Within(t, 5*time.Second, "lost while away", func() bool {
				st := decode[statusReply](t, ts.get(fmt.Sprintf("/api/exec/x1/status/%d", rep.PID)))
				return st.State == "lost" && !st.Done
			})
			// The restart: the task is no longer the agent's (its process is
			// ended by the test's cleanup, its report ignored by then).
			fa.mu.Lock()
			k := fa.running[rep.ID]
			delete(fa.running, rep.ID)
			fa.mu.Unlock()
			t.Cleanup(k.stop)
			if tc.report {
				fa.send(&protocol.Msg{Type: protocol.TypeExecDone, TID: rep.ID, Payload: &protocol.ExecDone{
					Code: protocol.CodeKilled, Time: time.Now(), Msg: tc.wantMsg, Restarted: true}})
			}
			fa.connect()
			st := ts.waitDone("x1", rep.PID)
			if st.State != "failed" || st.Code != tc.wantCode || !strings.HasPrefix(st.Msg, tc.wantMsg) {
				t.Errorf("after the restart: %+v, want failed, code %d, msg %q", st, tc.wantCode, tc.wantMsg)
			}
			task, _ := ts.srv.Store().GetTask(context.Background(), rep.ID)
			if task.State != store.TaskFailed || !strings.HasPrefix(task.Msg, tc.wantMsg) {
				t.Errorf("task %+v", task)
			}
		})
	}
	t.Run("v1 result is lost", func(t *testing.T) {
		ts := startServer(t, serverSpec{})
		fa := newFakeExec(t, ts.addr, "x1")
		ts.waitOnline("x1")
		ch := make(chan envelope, 1)
		go func() {
			b, _ := json.Marshal(map[string]any{"cmd": "hold"})
			req, _ := http.NewRequest("POST", ts.url+"/api/exec/x1/run", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+opToken)
			resp, err := ts.client.Do(req)
			if err != nil {
				ch <- envelope{status: -1, Msg: err.Error()}
				return
			}
			defer resp.Body.Close()
			var e envelope
			_ = json.NewDecoder(resp.Body).Decode(&e)
			e.status = resp.StatusCode
			ch <- e
		}()
		eventually.Within(t, 30*time.Second, "running", func() bool {
			fa.mu.Lock()
			defer fa.mu.Unlock()
			return len(fa.running) == 1
		})
		fa.drop()
		e := <-ch
		if e.status != 410 || !strings.HasPrefix(e.Msg, "agent went away: agent disconnected mid-run") {
			t.Errorf("sync run over a drop: %d %s", e.status, e.Msg)
		}
		tasks, _, _ := ts.srv.Store().ListTasks(context.Background(), store.TaskFilter{})
		if len(tasks) != 1 || tasks[0].State != store.TaskFailed || tasks[0].Summary.Lost != 1 {
			t.Errorf("tasks %+v", tasks)
		}
	})
}

func TestExecBadInput(t *testing.T) {
	// A 900 KB parameter is not echoed back whole: messages stop at 1 KiB.
	long := `invalid parameter env: "=` + strings.Repeat("x", 900<<10) + `" is not K=V`
	clipped := fmt.Sprintf("%s… (%d more bytes)", long[:1024], len(long)-1024)
	ts, cache := startExecServer(t, nil)
	newFakeExec(t, ts.addr, "x1", protocol.CapStream)
	startAgent(t, ts.addr, agentSpec{id: "ex-1"})
	ts.waitOnline("x1")
	ts.waitOnline("ex-1")
	checkAPI(t, ts, equal, []apiCase{
		{"POST", "/api/exec/x1/run", `{`, 400, "invalid JSON body: unexpected end of input"},
		{"POST", "/api/exec/x1/run", `{}`, 400, "missing parameter cmd"},
		{"POST", "/api/exec/x1/run", `{"cmd":"true","colour":1}`, 400, "unknown parameter colour"},
		{"POST", "/api/exec/x1/run", `{"cmd":"true","timeout":"x"}`, 400, "invalid parameter timeout: must be an integer (got string)"},
		{"POST", "/api/exec/x1/run", `{"cmd":"true","timeout":100000}`, 400, "invalid parameter timeout: must be at most 3600 seconds"},
		{"POST", "/api/exec/x1/run", `{"cmd":"true","auth":"root"}`, 400, "invalid parameter auth: must be one of su, sudo"},
		{"POST", "/api/exec/x1/run", `{"cmd":"true","auth":"sudo"}`, 400, "missing parameter user (needed with auth)"},
		{"POST", "/api/exec/x1/run", `{"cmd":"true","env":["=x"]}`, 400, `invalid parameter env: "=x" is not K=V`},
		{"POST", "/api/exec/x1/run", `{"cmd":"echo a\u0000b"}`, 400, "invalid parameter cmd: contains NUL"},
		{"POST", "/api/exec/x1/run", `{"cmd":"echo","args":["a","b\u0000"]}`, 400, "invalid parameter args: contains NUL"},
		{"POST", "/api/exec/x1/run", `{"cmd":"pwd","workdir":"/tmp\u0000"}`, 400, "invalid parameter workdir: contains NUL"},
		{"POST", "/api/exec/x1/run", `{"cmd":"true","env":["=` + strings.Repeat("x", 900<<10) + `"]}`, 400, clipped},
		{"POST", "/api/exec/nobody/run", `{"cmd":"true"}`, 404, "not found: agent"},
		{"POST", "/api/exec/ex-1/run", `{"cmd":"true"}`, 424, "invalid agent type want [exec-agent] got [example-agent]"},
		{"GET", "/api/exec/x1/status/abc", "", 400, "invalid parameter pid: must be an integer between 1 and 2147483647"},
		{"GET", "/api/exec/x1/status/0", "", 400, "invalid parameter pid: must be an integer between 1 and 2147483647"},
		{"GET", "/api/exec/x1/status/4242", "", 404, "not found: task"},
		{"GET", "/api/exec/x1/pty/4242", "", 404, "not found: task"},
		{"DELETE", "/api/exec/x1/kill/4242", "", 404, "not found: task"},
		{"DELETE", "/api/exec/ex-1/kill/4242", "", 424, "invalid agent type want [exec-agent] got [example-agent]"},
		{"GET", "/api/exec/ex-1/ps", "", 424, "invalid agent type want [exec-agent] got [example-agent]"},
		{"GET", "/api/exec/x1/ps?timeout=0", "", 400, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 1h0m0s"},
		{"GET", "/api/file/x1/ls", "", 400, "missing parameter dir"},
		{"GET", "/api/file/x1/ls?dir=/nope", "", 404, "open /nope: no such file or directory"}, // a v1 agent: kind read from its text
		{"GET", "/api/file/ex-1/ls?dir=/", "", 424, "invalid agent type want [exec-agent] got [example-agent]"},
		{"GET", "/api/file/x1/download", "", 400, "missing parameter dir"},
		{"GET", "/api/file/x1/download?dir=/x&timeout=-1", "", 400, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 1h0m0s"},
		{"GET", "/api/file/x1/download?dir=/nope", "", 404, "open /nope: no such file or directory"},
		{"POST", "/api/file/x1/upload", "", 400, "invalid multipart body: request Content-Type isn't multipart/form-data"},
		{"GET", "/api/transfer/abc", "", 404, "not found: transfer"},
		{"PUT", "/api/transfer/abc", "x", 404, "not found: transfer"},
	})

	// Multipart forms.
	forms := []struct {
		path   string
		fields map[string]string
		file   string // content; "" = no file part
		status int
		msg    string
	}{
		{"/api/file/x1/upload", map[string]string{}, "abc", 400, "missing parameter dir"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d"}, "", 400, "missing parameter file"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "url": "http://example.invalid/x"}, "abc", 400, "invalid parameter url: give either file or url, not both"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "url": "ftp://host/x"}, "", 400, "invalid parameter url: must be an http or https URL"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "mod": "999"}, "abc", 400, "invalid parameter mod: must be an octal file mode like 0644"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "md5": "xyz"}, "abc", 400, "invalid parameter md5: must be 32 hex digits"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "md5": "00000000000000000000000000000000"}, "abc", 400, "md5 mismatch: the file's md5 is 900150983cd24fb0d6963f7d28e17f72"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "crc32c": "xyz"}, "abc", 400, "invalid parameter crc32c: must be 8 hex digits"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "crc32c": "0000000000"}, "abc", 400, "invalid parameter crc32c: must be 8 hex digits"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "crc32c": "00000000"}, "abc", 400, "crc32c mismatch: the file's crc32c is 364b3fb7"},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "name": "../etc/passwd"}, "abc", 400, `invalid parameter name: "../etc/passwd" is not a plain file name`},
		{"/api/file/x1/upload", map[string]string{"dir": "/d", "auth": "x"}, "abc", 400, "invalid parameter auth: must be one of su, sudo"},
		{"/api/file/ex-1/upload", map[string]string{"dir": "/d"}, "abc", 424, "invalid agent type want [exec-agent] got [example-agent]"},
		{"/api/script/x1/run", map[string]string{}, "echo", 400, "missing parameter type"},
		{"/api/script/x1/run", map[string]string{"type": "ruby"}, "echo", 400, "invalid parameter type: must be one of sh, bash, python, python3, bat, powershell, php, lua"},
		{"/api/script/x1/run", map[string]string{"type": "sh"}, "", 400, "missing parameter file"},
		{"/api/script/x1/run", map[string]string{"type": "sh", "timeout": "x"}, "echo", 400, "invalid parameter timeout: must be an integer between -2147483648 and 2147483647"},
		{"/api/script/x1/run", map[string]string{"type": "sh", "md5": "00000000000000000000000000000000"}, "abc", 400, "md5 mismatch: the file's md5 is 900150983cd24fb0d6963f7d28e17f72"},
	}
	for _, f := range forms {
		e := ts.multipart(f.path, f.fields, "a.txt", f.file)
		if e.status != f.status || e.Msg != f.msg {
			t.Errorf("%s %v: %d %q, want %d %q", f.path, f.fields, e.status, e.Msg, f.status, f.msg)
		}
	}
	cacheEmpty(t, cache)
}

// startExecServer starts a server and returns it with its cache dir.
func startExecServer(t *testing.T, mod func(*config.Config)) (*testServer, string) {
	dir := t.TempDir()
	return startServer(t, serverSpec{dataDir: dir, mod: mod}), filepath.Join(dir, "cache")
}

// multipart posts a form; file "" sends no file part.
func (ts *testServer) multipart(path string, fields map[string]string, name, file string) envelope {
	ts.t.Helper()
	var b []byte
	if file != "" {
		b = []byte(file)
	}
	return ts.multipartBytes(path, fields, name, b)
}

// multipartBytes posts a form; a nil file sends no file part.
func (ts *testServer) multipartBytes(path string, fields map[string]string, name string, file []byte) envelope {
	ts.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if file != nil {
		w, _ := mw.CreateFormFile("file", name)
		_, _ = w.Write(file)
	}
	_ = mw.Close()
	req, _ := http.NewRequest("POST", ts.url+path, &buf)
	req.Header.Set("Authorization", "Bearer "+opToken)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e envelope
	e.body, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(e.body, &e)
	e.status, e.header = resp.StatusCode, resp.Header
	return e
}
