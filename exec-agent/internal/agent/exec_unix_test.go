//go:build unix

package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

func TestExec(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	wd := t.TempDir()
	tests := []struct {
		name    string
		x       protocol.Exec
		ok      bool
		msg     string // execd.msg contains (ok false)
		code    int
		output  string
		outputF func(string) bool
	}{
		{name: "exit code", x: protocol.Exec{Cmd: "exit 3", Pipe: true}, ok: true, code: 3},
		{name: "stdout and stderr", x: protocol.Exec{Cmd: "echo out; echo err >&2; echo out2", Pipe: true}, ok: true, output: "out\nerr\nout2\n"},
		{name: "pty", x: protocol.Exec{Cmd: "echo hi"}, ok: true, output: "hi\r\n"},
		{name: "args quoted", x: protocol.Exec{Cmd: "printf '%s|'", Args: []string{"a b", "$HOME", "'q'", ";true"}, Pipe: true}, ok: true, output: "a b|$HOME|'q'|;true|"},
		{name: "env and workdir", x: protocol.Exec{Cmd: "echo $FOO; pwd", Env: []string{"FOO=bar baz"}, WorkDir: wd, Pipe: true}, ok: true, output: "bar baz\n" + wd + "\n"},
		{name: "signal", x: protocol.Exec{Cmd: "kill -KILL $$", Pipe: true}, ok: true, code: 137},
		{name: "timeout", x: protocol.Exec{Cmd: "echo start; sleep 30", Timeout: 1, Pipe: true}, ok: true, code: 143, output: "start\n"},
		{name: "gbk output", x: protocol.Exec{Cmd: `printf '\304\343\272\303'`, Pipe: true}, ok: true, output: "你好"},
		{name: "bad workdir", x: protocol.Exec{Cmd: "true", WorkDir: "/nonexistent/dir"}, msg: "workdir: stat /nonexistent/dir: no such file or directory"},
		{name: "workdir is a file", x: protocol.Exec{Cmd: "true", WorkDir: "/etc/passwd"}, msg: "workdir /etc/passwd: not a directory"},
		{name: "bad env", x: protocol.Exec{Cmd: "true", Env: []string{"NOEQUALS"}}, msg: `invalid exec request: env[0] "NOEQUALS": want K=V`},
		{name: "bad auth", x: protocol.Exec{Cmd: "true", Auth: "runas", User: "x"}, msg: "invalid exec request"},
		{name: "bad pass", x: protocol.Exec{Cmd: "true", Auth: "sudo", User: "root", Pass: "plain"}, msg: "invalid exec request: pass"},
		{name: "long output", x: protocol.Exec{Cmd: "seq 1 200000", Pipe: true}, ok: true, outputF: func(s string) bool {
			var b strings.Builder
			for i := 1; i <= 200000; i++ {
				b.WriteString(strconv.Itoa(i))
				b.WriteByte('\n')
			}
			return s == b.String()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.exec(&tc.x)
			if r.execd.OK != tc.ok {
				t.Fatalf("execd.ok = %v (msg %q), want %v", r.execd.OK, r.execd.Msg, tc.ok)
			}
			if !tc.ok {
				if !strings.Contains(r.execd.Msg, tc.msg) {
					t.Errorf("execd.msg = %q, want it to contain %q", r.execd.Msg, tc.msg)
				}
				if len(r.msgs) != 1 {
					t.Errorf("replies %v, want only execd", r.msgs)
				}
				return
			}
			if r.execd.Pid <= 0 || r.execd.Time.IsZero() {
				t.Errorf("execd = %+v, want pid and time", r.execd)
			}
			if r.done.Code != tc.code {
				t.Errorf("code = %d, want %d (output %q)", r.done.Code, tc.code, r.output)
			}
			if r.done.Time.Before(r.execd.Time) {
				t.Errorf("exec_done.t %v before execd.t %v", r.done.Time, r.execd.Time)
			}
			if tc.outputF != nil {
				if !tc.outputF(r.output) {
					t.Errorf("output wrong: %d bytes, starts %q", len(r.output), r.output[:min(len(r.output), 60)])
				}
			} else if r.output != tc.output {
				t.Errorf("output = %q, want %q", r.output, tc.output)
			}
		})
	}
}

func TestExecBusyKillPs(t *testing.T) {
	e := start(t, agenttest.Options{}, func(c *Config) { c.Exec.MaxTasks = 1 })
	tid := e.send(&protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "sleep 30", Pipe: true}})
	execd := e.await(tid, 10*time.Second)
	if execd.Type != protocol.TypeExecd || !execd.Execd().OK {
		t.Fatalf("first exec: %+v", execd)
	}

	busy := e.exec(&protocol.Exec{Cmd: "true"})
	if busy.execd.OK || busy.execd.Msg != "busy: 1 tasks running, limit 1" {
		t.Errorf("second exec: execd %+v, want busy", busy.execd)
	}

	ps := e.call(&protocol.Msg{Type: protocol.TypePsReq})
	if ps.Type != protocol.TypePsRep || len(ps.Ps().Tasks) != 1 || ps.Ps().Tasks[0].TaskID != tid || ps.Ps().Tasks[0].Pid != execd.Execd().Pid {
		t.Fatalf("ps = %+v, want task %s pid %d", ps.Ps(), tid, execd.Execd().Pid)
	}

	kills := []struct {
		name string
		kill protocol.ExecKill
		want protocol.ExecKillRep
	}{
		{"unknown task", protocol.ExecKill{TaskID: "nope"}, protocol.ExecKillRep{Msg: protocol.MsgNoSuchTask, TaskID: "nope", Kind: protocol.KindNotFound}},
		{"pid of another task", protocol.ExecKill{Pid: execd.Execd().Pid, TaskID: "nope"}, protocol.ExecKillRep{Msg: protocol.MsgNoSuchTask, TaskID: "nope", Pid: execd.Execd().Pid, Kind: protocol.KindNotFound}},
		{"nothing", protocol.ExecKill{}, protocol.ExecKillRep{Msg: protocol.MsgNoSuchTask, Kind: protocol.KindNotFound}},
		{"by task id", protocol.ExecKill{TaskID: tid}, protocol.ExecKillRep{OK: true, TaskID: tid, Pid: execd.Execd().Pid}},
	}
	for _, k := range kills {
		rep := e.call(&protocol.Msg{Type: protocol.TypeExecKill, Payload: &k.kill})
		if rep.Type != protocol.TypeExecKillRep || *rep.ExecKillRep() != k.want {
			t.Errorf("%s: reply %v %+v, want %+v", k.name, rep.Type, rep.ExecKillRep(), k.want)
		}
	}
	done := e.await(tid, 10*time.Second)
	if done.Type != protocol.TypeExecDone || done.ExecDone().Code != 143 {
		t.Fatalf("after kill: %v %+v, want exec_done code 143", done.Type, done.ExecDone())
	}
	// ps lists an exec until its exec_done is handed to the runtime (a
	// server ending the tasks missing from ps must never end one that just
	// finished), which is a moment after the server may have seen it.
	eventually.Within(t, 10*time.Second, "ps to be empty after the end", func() bool {
		ps = e.call(&protocol.Msg{Type: protocol.TypePsReq})
		return ps.Ps().Tasks != nil && len(ps.Ps().Tasks) == 0
	})
}

// A v1 exec_kill has no tid and gets no reply; the task ends as killed.
func TestExecKillV1(t *testing.T) {
	e := start(t, agenttest.Options{V1: true}, nil)
	tid := e.send(&protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "echo ready; sleep 30", Pipe: true}})
	execd := e.await(tid, 10*time.Second)
	if !execd.Execd().OK || execd.Seq != 0 {
		t.Fatalf("execd %+v seq %d, want ok without seq (v1)", execd.Execd(), execd.Seq)
	}
	// Pipe is an extension field: a v1 session runs in a pty.
	data := e.await(tid, 10*time.Second)
	if data.Type != protocol.TypeExecData || data.ExecData().Data != "cmVhZHkNCg==" { // "ready\r\n"
		t.Fatalf("first output %v %+v, want ready\\r\\n from a pty", data.Type, data.ExecData())
	}
	if err := e.srv.SendRaw(e.id, fmt.Appendf(nil, `{"type":14,"exec_kill":{"pid":%d}}`, execd.Execd().Pid)); err != nil {
		t.Fatal(err)
	}
	done := e.await(tid, 10*time.Second)
	if done.Type != protocol.TypeExecDone || (done.ExecDone().Code != 143 && done.ExecDone().Code != 137) {
		t.Fatalf("after kill: %v %+v, want exec_done 143/137", done.Type, done.ExecDone())
	}
}

// The result of a command that runs while the connection is down arrives
// after the reconnect (ack.v1 journal replay).
func TestExecResultAfterReconnect(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	mark := t.TempDir() + "/go"
	tid := e.send(&protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{
		Cmd: fmt.Sprintf("echo before; while [ ! -e %s ]; do sleep 0.01; done; echo after; exit 7", mark), Pipe: true}})
	m := e.await(tid, 10*time.Second)
	if m.Type != protocol.TypeExecd || !m.Execd().OK {
		t.Fatalf("execd: %+v", m)
	}
	pid := m.Execd().Pid
	if m := e.await(tid, 10*time.Second); m.Type != protocol.TypeExecData {
		t.Fatalf("want the first output, got %v", m.Type)
	}
	e.srv.Stop()
	writeFile(t, mark, "")
	// The task ends while the server is gone; give it the time to do so.
	eventually.Within(t, 10*time.Second, "the command's end", func() bool { return syscall.Kill(pid, 0) != nil })
	if err := e.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	r := e.collectRest(tid)
	if r.output != "after\n" || r.done == nil || r.done.Code != 7 {
		t.Fatalf("after reconnect: output %q done %+v, want after\\n and code 7", r.output, r.done)
	}
}

// Stopping the agent kills the running tasks' trees before Run returns.
func TestShutdownKillsTasks(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	mark := t.TempDir() + "/started"
	tid := e.send(&protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{
		Cmd: fmt.Sprintf("trap '' TERM; sleep 30 & touch %s; wait", mark), Pipe: true}})
	m := e.await(tid, 10*time.Second)
	if m.Type != protocol.TypeExecd || !m.Execd().OK {
		t.Fatalf("execd: %+v", m)
	}
	eventually.Within(t, 10*time.Second, "the command to start", func() bool { _, err := os.Stat(mark); return err == nil })
	e.stop()
	if left := liveGroupMembers(t, m.Execd().Pid); len(left) > 0 {
		t.Errorf("processes of the task (group %d) outlived the agent's Run: %v", m.Execd().Pid, left)
	}
}
