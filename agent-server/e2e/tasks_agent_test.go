//go:build unix

package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"
)

// execSim is the exec side of the simulated exec-agents of the task and
// layout tests: commands run for real (sh -c in their own process group,
// output of stdout and stderr streamed as it comes, exec_done after the
// last chunk, journaled with ack.v1), kill by task id kills the group,
// uploads and downloads go over the one-shot URLs (bulk.v1). It counts the
// commands running at once across all agents that share it.
type execSim struct {
	mu      sync.Mutex
	running map[string]map[string]int // agent id -> tid -> pid (a fleet task's tid is the same on every agent)
	states  map[string]string         // agent id -> state file, kept across restarts
	cur     atomic.Int64
	peak    atomic.Int64
	started atomic.Int64
}

func newExecSim() *execSim {
	return &execSim{running: map[string]map[string]int{}, states: map[string]string{}}
}

// startExecAgent runs a libagent agent of type exec-agent with id.
func (x *execSim) startExecAgent(t *testing.T, addr, id string) *testAgent {
	t.Helper()
	b := libagent.DefaultBasic()
	b.ID, b.Server, b.Token = id, addr, agentToken
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{id: id, cancel: cancel, done: make(chan error, 1)}
	a := &libagent.Agent{
		Name: "exec-agent", Version: "1.2.3", Config: &agentConf{Basic: b},
		Caps: []string{protocol.CapBulk, protocol.CapStream},
		Setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypeExec, func(ctx context.Context, m *protocol.Msg, w libagent.Replier) error { return x.exec(ctx, id, m, w) })
			rt.Handle(protocol.TypeExecKill, func(ctx context.Context, m *protocol.Msg, w libagent.Replier) error { return x.kill(ctx, rt, id, m, w) })
			rt.Handle(protocol.TypePsReq, func(ctx context.Context, m *protocol.Msg, w libagent.Replier) error {
				r := protocol.Reply(m, protocol.TypePsRep)
				r.Payload = &protocol.Ps{Tasks: []protocol.PsTask{}}
				x.mu.Lock()
				for tid, pid := range x.running[id] {
					r.Ps().Tasks = append(r.Ps().Tasks, protocol.PsTask{TaskID: tid, Pid: pid})
				}
				x.mu.Unlock()
				return w.Reply(ctx, r)
			})
			rt.Handle(protocol.TypeUpload, func(ctx context.Context, m *protocol.Msg, w libagent.Replier) error { return upload(ctx, rt, m, w) })
			rt.Handle(protocol.TypeDownloadReq, func(ctx context.Context, m *protocol.Msg, w libagent.Replier) error { return download(ctx, rt, m, w) })
			return nil
		},
	}
	x.mu.Lock()
	state, ok := x.states[id]
	if !ok {
		state = filepath.Join(t.TempDir(), "agent.state")
		x.states[id] = state
	}
	x.mu.Unlock()
	o := libagent.Options{
		StatePath: state, Logger: logger(t).With("agent", id),
		KeepAlive: 2 * time.Second, Backoff: &backoff.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		SkipLimits: true, Workers: 64,
	}
	go func() { ta.done <- libagent.Run(ctx, a, o) }()
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

func (x *execSim) exec(ctx context.Context, id string, m *protocol.Msg, w libagent.Replier) error {
	ex := m.Exec()
	timeout := time.Duration(ex.Timeout) * time.Second
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	line := ex.Cmd
	for _, a := range ex.Args {
		line += " '" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = append(os.Environ(), "AGENT_ID="+id)
	cmd.Env = append(cmd.Env, ex.Env...)
	cmd.Dir = ex.WorkDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	// The run outlives a dropped connection: results are journaled.
	bg := context.WithoutCancel(ctx)
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		r := protocol.Reply(m, protocol.TypeExecd)
		r.Payload = &protocol.Execd{OK: false, Msg: err.Error(), Time: time.Now()}
		return w.ReplyReliable(bg, r)
	}
	pw.Close()
	x.started.Add(1)
	n := x.cur.Add(1)
	for p := x.peak.Load(); n > p && !x.peak.CompareAndSwap(p, n); p = x.peak.Load() {
	}
	x.mu.Lock()
	if x.running[id] == nil {
		x.running[id] = map[string]int{}
	}
	x.running[id][m.TID] = cmd.Process.Pid
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		delete(x.running[id], m.TID)
		x.mu.Unlock()
		x.cur.Add(-1)
	}()
	r := protocol.Reply(m, protocol.TypeExecd)
	r.Payload = &protocol.Execd{OK: true, Pid: cmd.Process.Pid, Time: time.Now()}
	if err := w.ReplyReliable(bg, r); err != nil {
		return err
	}
	killGroup := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stop := make(chan struct{})
	go func() {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-ctx.Done(): // killed by task id, or the agent stops
			killGroup()
		case <-t.C:
			killGroup()
		case <-stop:
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		k, rerr := pr.Read(buf)
		if k > 0 {
			d := protocol.Reply(m, protocol.TypeExecData)
			d.Payload = &protocol.ExecData{Data: base64.StdEncoding.EncodeToString(buf[:k])}
			if err := w.ReplyReliable(bg, d); err != nil {
				killGroup()
				break
			}
		}
		if rerr != nil {
			break
		}
	}
	pr.Close()
	werr := cmd.Wait()
	close(stop)
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		} else {
			code = ee.ExitCode()
		}
	}
	done := protocol.Reply(m, protocol.TypeExecDone)
	done.Payload = &protocol.ExecDone{Code: code, Time: time.Now()}
	return w.ReplyReliable(bg, done)
}

func (x *execSim) kill(ctx context.Context, rt *libagent.Runtime, id string, m *protocol.Msg, w libagent.Replier) error {
	k := m.ExecKill()
	tid := k.TaskID
	x.mu.Lock()
	if tid == "" {
		for t, pid := range x.running[id] {
			if pid == k.Pid {
				tid = t
			}
		}
	}
	_, ok := x.running[id][tid]
	x.mu.Unlock()
	if ok {
		ok = rt.Cancel(tid)
	}
	if k.TaskID == "" {
		return nil // v1: no reply
	}
	r := protocol.Reply(m, protocol.TypeExecKillRep)
	r.Payload = &protocol.ExecKillRep{OK: ok, TaskID: tid}
	if !ok {
		r.ExecKillRep().Msg = protocol.MsgNoSuchTask
	}
	return w.Reply(ctx, r)
}

func upload(ctx context.Context, rt *libagent.Runtime, m *protocol.Msg, w libagent.Replier) error {
	up := m.Upload()
	rep := protocol.Reply(m, protocol.TypeUploadRep)
	full := filepath.Join(up.Dir, up.Name)
	rep.Payload = &protocol.UploadRep{Dir: full, OK: true}
	var buf bytes.Buffer
	var err error
	if up.URI != "" {
		_, err = rt.Fetch(ctx, up.URI, up.Token, &buf)
	} else if up.Data != "" {
		return errors.New("inline uploads are not simulated")
	}
	if err == nil {
		err = os.WriteFile(full, buf.Bytes(), up.Mod.Perm())
	}
	if err != nil {
		rep.UploadRep().OK, rep.UploadRep().Msg = false, err.Error()
	}
	return w.Reply(ctx, rep)
}

func download(ctx context.Context, rt *libagent.Runtime, m *protocol.Msg, w libagent.Replier) error {
	req := m.DownloadReq()
	rep := protocol.Reply(m, protocol.TypeDownloadRep)
	rep.Payload = &protocol.DownloadRep{Dir: req.Dir}
	b, err := os.ReadFile(req.Dir)
	if err == nil && req.URI == "" {
		err = errors.New("only bulk downloads are simulated")
	}
	if err == nil {
		err = rt.Put(ctx, req.URI, req.Token, bytes.NewReader(b), int64(len(b)))
	}
	if err != nil {
		rep.DownloadRep().Msg = err.Error()
		return w.Reply(ctx, rep)
	}
	rep.DownloadRep().OK, rep.DownloadRep().Size, rep.DownloadRep().MD5 = true, uint64(len(b)), md5.Sum(b)
	return w.Reply(ctx, rep)
}
