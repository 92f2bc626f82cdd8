//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

func TestExec(t *testing.T) {
	e := newEnv(t, envOptions{})
	wd := t.TempDir()
	tests := []struct {
		name   string
		req    runReq
		code   int
		output string
	}{
		{name: "true", req: runReq{Cmd: "true"}},
		{name: "false", req: runReq{Cmd: "false"}, code: 1},
		{name: "exit 3", req: runReq{Cmd: "exit 3"}, code: 3},
		{name: "exit 255", req: runReq{Cmd: "exit 255"}, code: 255},
		{name: "no such command", req: runReq{Cmd: "no-such-command-e2e"}, code: 127, output: "no-such-command-e2e: not found"},
		{name: "killed by a signal", req: runReq{Cmd: "kill -KILL $$"}, code: 137},
		{name: "stdout and stderr", req: runReq{Cmd: "echo out; echo err >&2; echo out2"}, output: "out\r\nerr\r\nout2\r\n"},
		{name: "args", req: runReq{Cmd: "printf '%s|'", Args: []string{"a b", "$HOME", "`x`"}}, output: "a b|$HOME|`x`|"},
		{name: "env and workdir", req: runReq{Cmd: "echo $E2E_FOO; pwd", Env: []string{"E2E_FOO=bar baz"}, WorkDir: wd}, output: "bar baz\r\n" + wd + "\r\n"},
		{name: "su to nobody", req: runReq{Cmd: "id -un", Auth: "su", User: "nobody"}, output: "nobody\r\n"},
		{name: "pty by default", req: runReq{Cmd: "test -t 1 && echo tty"}, output: "tty\r\n"},
		{name: "pipes on request", req: runReq{Cmd: "test -t 1 || echo pipe; echo err >&2", Pipe: true}, output: "pipe\nerr\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.Auth == "su" && os.Geteuid() != 0 {
				t.Skip("su without a password needs root")
			}
			rr, r := e.run(tc.req, false)
			if r.status != 200 || rr.Result == nil {
				t.Fatalf("run: %d %s", r.status, r.body)
			}
			res := rr.Result
			if res.Running || res.Code != tc.code {
				t.Errorf("code %d running %v state %s, want %d", res.Code, res.Running, res.State, tc.code)
			}
			if !strings.Contains(string(res.Data), tc.output) || (tc.output == "" && len(res.Data) != 0) {
				t.Errorf("output %q, want %q", res.Data, tc.output)
			}
		})
	}
	t.Run("sudo", func(t *testing.T) {
		if _, err := exec.LookPath("sudo"); err != nil {
			t.Skip("sudo is not installed here")
		}
		rr, r := e.run(runReq{Cmd: "id -un", Auth: "sudo", User: "nobody"}, false)
		if r.status != 200 || rr.Result.Code != 0 || !strings.Contains(string(rr.Result.Data), "nobody") {
			t.Errorf("sudo: %d %s", r.status, r.body)
		}
	})
	t.Run("su wrong user", func(t *testing.T) {
		rr, r := e.run(runReq{Cmd: "id -un", Auth: "su", User: "no-such-user-e2e"}, false)
		if r.status != 200 || rr.Result.Code == 0 {
			t.Errorf("su to a missing user: %d %s", r.status, r.body)
		}
	})
	t.Run("bad workdir", func(t *testing.T) {
		_, r := e.run(runReq{Cmd: "true", WorkDir: "/nonexistent/e2e"}, false)
		if r.status != 404 || !strings.Contains(r.Msg, "workdir: stat /nonexistent/e2e: no such file or directory") {
			t.Errorf("bad workdir: %d %s", r.status, r.body)
		}
	})
}

// 200,000 lines arrive complete and in order (pty: CRLF line ends).
func TestExecLongOutput(t *testing.T) {
	e := newEnv(t, envOptions{})
	rr, r := e.run(runReq{Cmd: "seq 1 200000"}, false)
	if r.status != 200 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	var want strings.Builder
	for i := 1; i <= 200000; i++ {
		want.WriteString(strconv.Itoa(i))
		want.WriteString("\r\n")
	}
	res := rr.Result
	if res.Code != 0 || res.Dropped != 0 || res.OutputBytes != int64(want.Len()) {
		t.Errorf("code %d dropped %d output_bytes %d, want 0, 0, %d", res.Code, res.Dropped, res.OutputBytes, want.Len())
	}
	if string(res.Data) != want.String() {
		got := string(res.Data)
		i := 0
		for i < len(got) && i < want.Len() && got[i] == want.String()[i] {
			i++
		}
		t.Fatalf("output differs at byte %d of %d (want %d bytes): %q", i, len(got), want.Len(), got[max(0, i-20):min(len(got), i+20)])
	}
}

// A timeout kills the whole tree: background children, a grandchild in
// its own session, a double-forked one.
func TestTimeoutKillsGrandchildren(t *testing.T) {
	e := newEnv(t, envOptions{})
	mark := filepath.Join(t.TempDir(), "started")
	tag := fmt.Sprintf("1000.%d", 100000+rand.IntN(800000)) // a sleep length nobody else uses
	cmd := fmt.Sprintf("sleep %[1]s & setsid sleep %[1]s & (sleep %[1]s &) ; trap '' TERM; touch %[2]s; sleep %[1]s", tag, mark)
	rr, r := e.run(runReq{Cmd: cmd, Timeout: 2}, true)
	if r.status != 200 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	eventually.Within(t, 30*time.Second, "the command to start", func() bool { _, err := os.Stat(mark); return err == nil })
	if pids := procsMatching(t, tag); len(pids) < 4 { // the four sleeps (and the shell)
		t.Fatalf("running: %d processes %v, want at least 4", len(pids), pids)
	}
	s := e.waitDone(rr.PID, 20*time.Second)
	if s.Code != 137 || s.State != "timed_out" {
		t.Errorf("status %+v, want code 137 (the shell ignores SIGTERM) and timed_out", s)
	}
	if pids := procsMatching(t, tag); len(pids) != 0 {
		t.Errorf("processes survived the timeout: %v", pids)
	}
}

// Kill by pid mid-run ends the task and its tree.
func TestKillByPid(t *testing.T) {
	e := newEnv(t, envOptions{})
	mark := filepath.Join(t.TempDir(), "started")
	tag := fmt.Sprintf("1000.%d", 100000+rand.IntN(800000))
	rr, r := e.run(runReq{Cmd: fmt.Sprintf("sleep %[1]s & touch %[2]s; sleep %[1]s", tag, mark), Timeout: 300}, true)
	if r.status != 200 || rr.PID <= 0 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	eventually.Within(t, 30*time.Second, "the command to start", func() bool { _, err := os.Stat(mark); return err == nil })

	if pids := procsMatching(t, tag); len(pids) < 2 { // two sleeps (and the shell)
		t.Fatalf("running: %d processes %v, want at least 2", len(pids), pids)
	}
	// ps lists it.
	ps := e.api("GET", "/api/exec/"+e.agentID+"/ps", nil)
	var list []struct {
		TaskID string `json:"task_id"`
		PID    int    `json:"pid"`
	}
	_ = json.Unmarshal(ps.Payload, &list)
	if ps.status != 200 || len(list) != 1 || list[0].PID != rr.PID || list[0].TaskID != rr.ID {
		t.Errorf("ps: %d %s, want task %s pid %d", ps.status, ps.body, rr.ID, rr.PID)
	}

	k := e.api("DELETE", fmt.Sprintf("/api/exec/%s/kill/%d", e.agentID, rr.PID), nil)
	if k.status != 200 {
		t.Fatalf("kill: %d %s", k.status, k.body)
	}
	s := e.waitDone(rr.PID, 15*time.Second)
	if s.Code != 143 && s.Code != 137 {
		t.Errorf("after kill: %+v, want code 143/137", s)
	}
	if pids := procsMatching(t, tag); len(pids) != 0 {
		t.Errorf("processes survived the kill: %v", pids)
	}
	// A pid that runs nothing.
	if k := e.api("DELETE", fmt.Sprintf("/api/exec/%s/kill/%d", e.agentID, rr.PID), nil); k.status != 404 {
		t.Errorf("second kill: %d %s, want 404", k.status, k.body)
	}
}

// The connection drops mid-run and stays down while the command ends; the
// client that waits for the result gets all of it after the reconnect.
func TestResultAfterReconnect(t *testing.T) {
	e := newEnv(t, envOptions{})
	dir := t.TempDir()
	started, release := filepath.Join(dir, "pid"), filepath.Join(dir, "release")
	type out struct {
		rr runReply
		r  reply
	}
	ch := make(chan out, 1)
	go func() {
		rr, r := e.run(runReq{Cmd: fmt.Sprintf("echo before; echo $$ > %s.tmp; mv %[1]s.tmp %[1]s; while [ ! -e %s ]; do sleep 0.02; done; echo after; exit 5", started, release), Timeout: 60}, false)
		ch <- out{rr, r}
	}()
	var pid int
	eventually.Within(t, 30*time.Second, "the command to start", func() bool {
		b, err := os.ReadFile(started)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	// The cut must come after the server has the command's start (execd):
	// a run whose start never reached the server ends 410 at once.
	eventually.Within(t, 10*time.Second, "the server to know the command", func() bool {
		return e.api("GET", fmt.Sprintf("/api/exec/%s/status/%d", e.agentID, pid), nil).status == 200
	})
	e.proxy.Pause(true)
	e.proxy.Cut()
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 30*time.Second, "the command to end while disconnected", func() bool { return syscall.Kill(pid, 0) != nil })
	e.proxy.Pause(false)
	select {
	case o := <-ch:
		if o.r.status != 200 || o.rr.Result == nil {
			t.Fatalf("run: %d %s", o.r.status, o.r.body)
		}
		if res := o.rr.Result; res.Code != 5 || string(res.Data) != "before\r\nafter\r\n" {
			t.Errorf("result code %d state %s output %q, want 5 and before+after", res.Code, res.State, res.Data)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no result 60 s after the reconnect")
	}
}

// The server is killed mid-run and restarted; the agent replays the result
// and the task's status shows it.
func TestResultAfterServerRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	dir := t.TempDir()
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	rr, r := e.run(runReq{Cmd: fmt.Sprintf("echo before; touch %s; while [ ! -e %s ]; do sleep 0.02; done; echo after; exit 6", started, release), Timeout: 60}, true)
	if r.status != 200 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	eventually.Within(t, 30*time.Second, "the command to start", func() bool { _, err := os.Stat(started); return err == nil })
	e.server.Kill()
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 30*time.Second, "the command to end while the server is down", func() bool { return syscall.Kill(rr.PID, 0) != nil })
	e.client.CloseIdleConnections()
	e.restartServer()
	e.waitOnline()
	s := e.waitDone(rr.PID, 30*time.Second)
	if s.Code != 6 || s.TaskID != rr.ID {
		t.Errorf("status after restart: %+v, want code 6 of task %s", s, rr.ID)
	}
	pty := e.api("GET", fmt.Sprintf("/api/exec/%s/pty/%d", e.agentID, rr.PID), nil)
	if pty.status != 200 || !strings.Contains(string(pty.body), "after") {
		t.Errorf("output after restart: %d %q, want it to hold the output", pty.status, pty.body)
	}
}
