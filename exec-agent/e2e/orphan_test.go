//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// A kill -9 of the exec-agent leaves its commands running, reparented to
// init, with nobody to read their output or report their end. The agent
// that starts next must end them (verified by pid and start time) and the
// server must end their async exec and fleet task item with a state and a
// message that say so, within a bounded time.
func TestAgentKill9EndsOrphans(t *testing.T) {
	e := newEnv(t, envOptions{})
	o := startOrphans(t, e)

	stop(t, e.agent, syscall.SIGKILL)
	o.waitOrphaned(t)
	e.restartAgent()

	// (a) Nothing the old agent started runs on, and nothing ran to its end.
	eventually.Within(t, 20*time.Second, "the orphaned commands to be ended", func() bool { return o.live() == nil })
	for _, m := range []string{o.asyncMarker, o.fleetMarker} {
		if _, err := os.Stat(m); err == nil {
			t.Errorf("%s written: the orphaned command ran to its end", m)
		}
	}

	// (b) The API ends both with a final state that names what happened.
	s := e.waitDone(o.asyncPID, 30*time.Second)
	want := fmt.Sprintf("agent restarted: command killed (pid %d)", o.asyncPID)
	if s.State != "failed" || s.Code != 137 || s.Msg != want {
		t.Errorf("async exec after the restart: %+v, want failed, code 137, msg %q", s, want)
	}
	item := o.waitFleet(t, e)
	want = fmt.Sprintf("agent restarted: command killed (pid %d)", o.fleetPID)
	if item.State != "failed" || item.ExitCode != 137 || item.Msg != want {
		t.Errorf("fleet task item after the restart: %+v, want failed, code 137, msg %q", item, want)
	}
}

// The agent comes back without its task records (an older exec-agent, a
// lost disk): its ps no longer lists the tasks, and the server ends them
// after that answer instead of waiting for a result that cannot come.
func TestAgentRestartWithoutRecordsEndsTasks(t *testing.T) {
	e := newEnv(t, envOptions{})
	o := startOrphans(t, e)
	t.Cleanup(o.kill) // nobody else will: the agent does not know them

	stop(t, e.agent, syscall.SIGKILL)
	o.waitOrphaned(t)
	recs := filepath.Join(e.agentDir, "conf", "agent.tasks")
	if _, err := os.Stat(recs); err != nil {
		t.Logf("task records: %v (an agent that keeps none)", err)
	}
	if err := os.RemoveAll(recs); err != nil {
		t.Fatal(err)
	}
	e.restartAgent()

	s := e.waitDone(o.asyncPID, 30*time.Second)
	if s.State != "failed" || !strings.Contains(s.Msg, "no longer runs") {
		t.Errorf("async exec after the restart: %+v, want failed and a msg saying the agent no longer runs it", s)
	}
	item := o.waitFleet(t, e)
	if item.State != "failed" || !strings.Contains(item.Msg, "no longer runs") {
		t.Errorf("fleet task item after the restart: %+v, want failed and a msg saying the agent no longer runs it", item)
	}
}

// orphans are an async exec (pipes) and a fleet task item (pty), each
// running `sleep 30; echo done > marker`, with SIGHUP ignored: a pty's
// hangup at the agent's death would otherwise end the shell (and, as it
// happens, its sleep or not), and the test wants commands that survive the
// agent, as many do (nohup, daemons, a shell that ignores the hangup).
type orphans struct {
	asyncMarker, fleetMarker string
	asyncPID, fleetPID       int
	fleetTask                string
	procs                    []procID // the commands' processes (shells and sleeps)
}

// procID names a process for good: a pid and its start time.
type procID struct {
	pid   int
	start uint64
}

func startOrphans(t *testing.T, e *env) *orphans {
	t.Helper()
	dir := t.TempDir()
	o := &orphans{asyncMarker: filepath.Join(dir, "async-done"), fleetMarker: filepath.Join(dir, "fleet-done")}
	rr, r := e.run(runReq{Cmd: "trap '' HUP; sleep 30; echo done > " + o.asyncMarker, Timeout: 120, Pipe: true}, true)
	if r.status != 200 || rr.PID == 0 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	o.asyncPID = rr.PID
	tr := e.api("POST", "/api/tasks", map[string]any{
		"selector": map[string]any{"ids": []string{e.agentID}},
		"cmd":      "trap '' HUP; sleep 30; echo done > " + o.fleetMarker, "timeout": 120,
	})
	var p struct{ ID string }
	if tr.status != 200 || json.Unmarshal(tr.Payload, &p) != nil || p.ID == "" {
		t.Fatalf("fleet task: %d %s", tr.status, tr.body)
	}
	o.fleetTask = p.ID
	eventually.Within(t, 20*time.Second, "both commands and their sleeps to run", func() bool {
		a, f := procsMatching(t, o.asyncMarker), procsMatching(t, o.fleetMarker)
		if len(a) != 1 || len(f) != 1 || len(groupOf(a[0])) < 2 || len(groupOf(f[0])) < 2 {
			return false
		}
		o.fleetPID = f[0]
		o.procs = append(groupOf(a[0]), groupOf(f[0])...)
		return a[0] == o.asyncPID
	})
	return o
}

// waitOrphaned checks that the commands outlived the agent.
func (o *orphans) waitOrphaned(t *testing.T) {
	t.Helper()
	if live := o.live(); len(live) != len(o.procs) {
		t.Fatalf("processes of the commands ended with the agent: %v of %v left", live, o.procs)
	}
}

// live returns the processes of o still running (same pid, same start).
func (o *orphans) live() []procID {
	var out []procID
	for _, p := range o.procs {
		if st, ok := procStart(p.pid); ok && st == p.start {
			out = append(out, p)
		}
	}
	return out
}

func (o *orphans) kill() {
	for _, p := range o.live() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// waitFleet waits until the fleet task has ended and returns its item.
func (o *orphans) waitFleet(t *testing.T, e *env) taskAgent {
	t.Helper()
	var v taskView
	eventually.Within(t, 30*time.Second, "the fleet task to end", func() bool {
		r := e.api("GET", "/api/tasks/"+o.fleetTask, nil)
		v = taskView{}
		_ = json.Unmarshal(r.Payload, &v)
		return v.State == "done" || v.State == "failed" || v.State == "cancelled"
	})
	if len(v.Agents) != 1 {
		t.Fatalf("fleet task: %+v", v)
	}
	return v.Agents[0]
}

type taskView struct {
	State  string      `json:"state"`
	Agents []taskAgent `json:"agents"`
}

type taskAgent struct {
	Agent    string `json:"agent"`
	State    string `json:"state"`
	ExitCode int    `json:"exit_code"`
	Msg      string `json:"msg"`
}

// groupOf returns the processes in the process group (or session) led by
// pid, the leader first.
func groupOf(pid int) []procID {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []procID
	for _, d := range dirs {
		f := statFields(d)
		if len(f) < 20 {
			continue
		}
		p, _ := strconv.Atoi(strings.Split(d, "/")[2])
		if f[2] == strconv.Itoa(pid) || f[3] == strconv.Itoa(pid) {
			st, _ := strconv.ParseUint(f[19], 10, 64)
			id := procID{pid: p, start: st}
			if p == pid {
				out = append([]procID{id}, out...)
			} else {
				out = append(out, id)
			}
		}
	}
	return out
}

// procStart returns the start time of a live (not zombie) process.
func procStart(pid int) (uint64, bool) {
	f := statFields(fmt.Sprintf("/proc/%d/stat", pid))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return st, err == nil
}

// statFields returns the fields of /proc/<pid>/stat after "(comm)": [0]
// is the state, [1] ppid, [2] pgrp, [3] session, [19] starttime.
func statFields(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// The server and the agent both die mid-run (a host's services restarted
// hard). With its records the agent kills the orphans and its reports
// complete the resumed fleet task and the async exec (adopted from the
// store); without them, the resumed fleet task asks the agent's ps and
// ends its item instead of waiting out the command's timeout for a
// journaled result that cannot come.
func TestServerAndAgentRestart(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("records kept %v", keep), func(t *testing.T) {
			e := newEnv(t, envOptions{})
			o := startOrphans(t, e)
			t.Cleanup(o.kill)

			e.server.Kill()
			stop(t, e.agent, syscall.SIGKILL)
			o.waitOrphaned(t)
			if !keep {
				if err := os.RemoveAll(filepath.Join(e.agentDir, "conf", "agent.tasks")); err != nil {
					t.Fatal(err)
				}
			}
			e.client.CloseIdleConnections()
			e.restartServer()
			e.restartAgent()

			item := o.waitFleet(t, e)
			want := fmt.Sprintf("agent restarted: command killed (pid %d)", o.fleetPID)
			if !keep {
				want = "agent reconnected and no longer runs this task"
			}
			if item.State != "failed" || !strings.HasPrefix(item.Msg, want) {
				t.Errorf("fleet task item after the restarts: %+v, want failed, msg %q", item, want)
			}
			if keep {
				eventually.Within(t, 20*time.Second, "the orphaned commands to be ended", func() bool { return o.live() == nil })
				s := e.waitDone(o.asyncPID, 30*time.Second)
				want = fmt.Sprintf("agent restarted: command killed (pid %d)", o.asyncPID)
				if s.State != "failed" || s.Code != 137 || s.Msg != want {
					t.Errorf("async exec after the restarts: %+v, want failed, code 137, msg %q", s, want)
				}
			}
		})
	}
}
