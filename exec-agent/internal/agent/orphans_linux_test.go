package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/runner"

	"github.com/agentfleet/jkframe/eventually"
)

// recordFiles returns the task records in the agent's state dir.
func recordFiles(t *testing.T, dir string) []taskRecord {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "agent.tasks", "*.json"))
	var out []taskRecord
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // removed meanwhile
		}
		var r taskRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, r)
	}
	return out
}

// A running exec has a record naming its process; its end removes it.
func TestTaskRecordLifecycle(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	mark := filepath.Join(t.TempDir(), "go")
	tid := e.send(&protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{
		Cmd: fmt.Sprintf("while [ ! -e %s ]; do sleep 0.01; done", mark), Pipe: true}})
	m := e.await(tid, 10*time.Second)
	if m.Type != protocol.TypeExecd || !m.Execd().OK {
		t.Fatalf("execd: %+v", m)
	}
	var recs []taskRecord
	eventually.Within(t, 10*time.Second, "the task's record", func() bool { recs = recordFiles(t, e.dir); return len(recs) == 1 })
	r := recs[0]
	if r.TaskID != tid || r.Pid != m.Execd().Pid || r.Start == 0 || r.Boot == "" || r.Marker == "" || r.Report != nil {
		t.Fatalf("record %+v, want task %s pid %d with start, boot and marker", r, tid, m.Execd().Pid)
	}
	writeFile(t, mark, "")
	for m := e.await(tid, 10*time.Second); m.Type != protocol.TypeExecDone; m = e.await(tid, 10*time.Second) {
	}
	eventually.Within(t, 10*time.Second, "the record's removal", func() bool { return len(recordFiles(t, e.dir)) == 0 })
}

// orphanProc starts what a dead agent would leave: `sh -c script` in its
// own process group with a task marker, and returns its record.
func orphanProc(t *testing.T, script, marker string) (runner.Record, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "EXEC_AGENT_TASK="+marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read the start time before anything reaps the process: a command
	// that ends at once stays a zombie, with its /proc entry, until then.
	pid := cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	st, _ := strconv.ParseUint(f[19], 10, 64)
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return runner.Record{Pid: pid, Start: st, Boot: strings.TrimSpace(string(boot)),
		Marker: marker, Begin: time.Now()}, done
}

// An agent that starts finds the records its previous process left: it
// kills what still runs, reports each task's end with exec_done{restarted, msg}
// (journaled) before it answers ps, and forgets the records.
func TestRestartEndsOrphans(t *testing.T) {
	dir := t.TempDir()
	live, _ := orphanProc(t, "trap '' HUP TERM; sleep 30", fmt.Sprintf("live-%d-%d", os.Getpid(), time.Now().UnixNano()))
	live.TaskID = "orphan-live"
	gone, exited := orphanProc(t, "true", fmt.Sprintf("gone-%d-%d", os.Getpid(), time.Now().UnixNano()))
	gone.TaskID = "orphan-gone"
	<-exited
	recs := records{dir: recordsDir(filepath.Join(dir, "agent.state"))}
	for _, r := range []runner.Record{live, gone} {
		if err := recs.write(taskRecord{Record: r}); err != nil {
			t.Fatal(err)
		}
	}

	e := startIn(t, dir, agenttest.Options{}, nil)
	if left := liveGroupMembers(t, live.Pid); len(left) > 0 {
		t.Errorf("the orphan runs on after the agent started: %v", left)
	}
	for _, c := range []struct {
		tid  string
		code int
		msg  string
	}{
		{live.TaskID, protocol.CodeKilled, fmt.Sprintf("agent restarted: command killed (pid %d)", live.Pid)},
		{gone.TaskID, protocol.CodeUnknown, fmt.Sprintf("agent restarted: command (pid %d) ended while the agent was down; its exit status and output since are lost", gone.Pid)},
	} {
		m := e.await(c.tid, 20*time.Second)
		if m.Type != protocol.TypeExecDone || m.ExecDone().Code != c.code || m.ExecDone().Msg != c.msg || !m.ExecDone().Restarted || m.Seq == 0 {
			t.Errorf("report for %s: %+v %+v, want exec_done code %d msg %q, journaled", c.tid, m, m.ExecDone(), c.code, c.msg)
		}
	}
	ps := e.call(&protocol.Msg{Type: protocol.TypePsReq})
	if ps.Type != protocol.TypePsRep || len(ps.Ps().Tasks) != 0 {
		t.Errorf("ps after the restart: %+v", ps)
	}
	eventually.Within(t, 10*time.Second, "the records' removal", func() bool { return len(recordFiles(t, dir)) == 0 })
}

// BenchmarkTaskRecord is what the record costs every exec: written at the
// start, removed at the end.
func BenchmarkTaskRecord(b *testing.B) {
	recs := records{dir: filepath.Join(b.TempDir(), "agent.tasks")}
	rec := taskRecord{Record: runner.Record{TaskID: "0123456789abcdef0123456789abcdef", Pid: 4242, Start: 123456, Boot: "a6b1f1e2-0c1d-4a5b-9c8d-7e6f5a4b3c2d", Marker: "0011223344556677", Begin: time.Now()}}
	for b.Loop() {
		if err := recs.write(rec); err != nil {
			b.Fatal(err)
		}
		recs.remove(rec.TaskID)
	}
}
