package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/runner"
)

// doneTimeout bounds the sending of exec_done once the task has ended:
// with ack.v1 it is journaled at once (and replayed later if the send
// fails); without, a connection that cannot take it within this time loses
// it, as in v1.
const doneTimeout = 30 * time.Second

// chunkSlack is how long past a task's timeout (and kill grace) its output
// may still wait for room in the send queue or journal before it is
// dropped: the command is dead by then, and a stuck send must not keep the
// task (and its exec_done) hanging forever.
const chunkSlack = 5 * time.Minute

// exec runs a command and streams its result. It returns when the task has
// ended and exec_done was handed to the runtime, so the task lives as long
// as the handler: Runtime.Cancel(tid) and the agent's shutdown kill it.
func (a *agent) exec(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	x := req.Exec()
	timeout := time.Duration(x.Timeout) * time.Second
	if timeout <= 0 {
		timeout = runner.DefaultTimeout
	}
	spec := runner.Spec{
		TaskID: req.TID, Cmd: x.Cmd, Args: x.Args, WorkDir: x.WorkDir, Env: x.Env, Timeout: timeout,
		Auth: x.Auth, User: x.User, Pass: x.Pass, DeferRM: x.DeferRM,
		// An extension's fields count only when it is in use.
		Pipe: x.Pipe && a.rt.HasCap(protocol.CapStream),
	}
	log := a.rt.Logger().With("tid", req.TID)

	chunkCtx, cancel := context.WithTimeout(ctx, timeout+a.grace+chunkSlack)
	defer cancel()
	out := &output{ctx: chunkCtx, w: w, ready: make(chan struct{}), log: log, stream: a.rt.HasCap(protocol.CapStream)}
	t, err := a.start(ctx, spec, out)
	if err != nil {
		log.Info("exec refused", "spec", spec, "err", err)
		return w.ReplyReliable(ctx, &protocol.Msg{Type: protocol.TypeExecd, Payload: &protocol.Execd{
			OK: false, Msg: err.Error(), Time: time.Now(), Kind: kindOf(err),
		}})
	}
	info := t.Info()
	log.Debug("exec started", "spec", spec, "pid", info.Pid)
	if req.TID != "" {
		a.execMu.Lock()
		a.execs[req.TID] = info
		a.execMu.Unlock()
	}
	err = w.ReplyReliable(ctx, &protocol.Msg{Type: protocol.TypeExecd, Payload: &protocol.Execd{
		OK: true, Pid: info.Pid, Time: info.Begin,
	}})
	if err != nil {
		log.Warn("exec: sending execd", "pid", info.Pid, "err", err)
	}
	close(out.ready) // output may go now: execd is first
	// Recorded while the command runs, off the path of execd and exec_done.
	if err := a.recs.write(taskRecord{Record: t.Record()}); err != nil {
		log.Warn("exec: the task is not recorded; a restart of the agent would not find it", "pid", info.Pid, "err", err)
	}
	res := t.Wait()
	// exec_done is with the runtime (journaled with ack.v1): ps may leave
	// the task out now.
	// A resent request with the same tid may own the entry and the record
	// by now.
	a.execMu.Lock()
	ours := a.execs[req.TID] == info
	if ours {
		delete(a.execs, req.TID)
	}
	a.execMu.Unlock()
	if ours {
		a.recs.remove(req.TID)
	}
	log.Debug("exec ended", "pid", res.Pid, "code", res.Code, "reason", res.Reason)
	return nil
}

// start starts spec. A missing working directory is named as such: the
// OS reports it as the shell missing. NUL, which no OS takes in an
// argument or path, is the request's mistake (the OS would call it an
// invalid argument, like its own failures).
func (a *agent) start(ctx context.Context, spec runner.Spec, out runner.Output) (*runner.Task, error) {
	fields := []struct {
		name string
		vals []string
	}{{"cmd", []string{spec.Cmd}}, {"args", spec.Args}, {"workdir", []string{spec.WorkDir}}, {"user", []string{spec.User}}}
	for _, f := range fields {
		if slices.ContainsFunc(f.vals, func(v string) bool { return strings.IndexByte(v, 0) >= 0 }) {
			return nil, protocol.WithKind(protocol.KindInvalid, fmt.Errorf("%s contains NUL", f.name))
		}
	}
	if spec.WorkDir != "" {
		fi, err := os.Stat(spec.WorkDir)
		if err != nil {
			return nil, fmt.Errorf("workdir: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("workdir %s: %w", spec.WorkDir, syscall.ENOTDIR)
		}
	}
	return a.run.Start(ctx, spec, out)
}

// output sends a task's output and end (runner.Output).
type output struct {
	ctx   context.Context
	w     libagent.Replier
	ready chan struct{} // closed once execd is sent
	log   *slog.Logger
	// stream: the server speaks stream.v1 and takes exec_done's cut,
	// dropped and msg, and each exec_data's offset.
	stream bool
	off    int64 // output bytes handed to Chunk so far (one goroutine)
}

func (o *output) Chunk(p []byte) error {
	<-o.ready
	d := &protocol.ExecData{Data: base64.StdEncoding.EncodeToString(p)}
	if o.stream {
		// A journal replay then overlaps nothing the server holds.
		off := o.off
		d.Off = &off
	}
	o.off += int64(len(p))
	return o.w.ReplyReliable(o.ctx, &protocol.Msg{Type: protocol.TypeExecData, Payload: d})
}

func (o *output) Done(res runner.Result) {
	<-o.ready
	if res.Err != nil {
		o.log.Warn("exec: task trouble", "pid", res.Pid, "err", res.Err)
	}
	done := &protocol.ExecDone{Code: res.Code, Time: res.End}
	if res.Incomplete() {
		// The runner logged the cut; the server records and counts it.
		o.log.Warn("exec: output incomplete", "pid", res.Pid, "cut", res.Cut, "holders", res.Holders, "dropped", res.Dropped)
		if o.stream {
			done.Cut, done.Dropped, done.Msg = res.Cut, res.Dropped, res.OutputMsg()
		}
	}
	// The task's context may be gone (shutdown): exec_done still goes to
	// the journal, bounded in time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(o.ctx), doneTimeout)
	defer cancel()
	err := o.w.ReplyReliable(ctx, &protocol.Msg{Type: protocol.TypeExecDone, Payload: done})
	if err != nil {
		o.log.Warn("exec: sending exec_done", "pid", res.Pid, "code", res.Code, "err", err)
	}
}

// kill kills a task's process tree. v1 sends no reply; with stream.v1 and a
// tid the answer is exec_kill_rep.
func (a *agent) kill(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	k := req.ExecKill()
	stream := a.rt.HasCap(protocol.CapStream)
	taskID := k.TaskID
	if !stream {
		taskID = ""
	}
	info, err := a.run.Kill(k.Pid, taskID)
	log := a.rt.Logger().With("tid", req.TID)
	if err != nil {
		log.Info("exec_kill", "pid", k.Pid, "task_id", taskID, "err", err)
	} else {
		log.Info("exec_kill", "pid", info.Pid, "task_id", info.TaskID)
	}
	if req.TID == "" || !stream {
		return nil
	}
	rep := &protocol.ExecKillRep{OK: err == nil, TaskID: taskID, Pid: k.Pid}
	switch {
	case err == nil:
		rep.TaskID, rep.Pid = info.TaskID, info.Pid
	case errors.Is(err, runner.ErrNoTask):
		rep.Msg, rep.Kind = protocol.MsgNoSuchTask, protocol.KindNotFound
	default:
		rep.Msg, rep.Kind = err.Error(), kindOf(err)
	}
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeExecKillRep, Payload: rep})
}

// psReportWait bounds how long ps waits for the reports on a previous
// agent process's tasks to be sent.
const psReportWait = 10 * time.Second

// ps lists the running tasks. Right after a restart it first lets the
// reports on the tasks of the previous agent process go out, so that a
// server that finds a task missing from the list has its report already.
func (a *agent) ps(ctx context.Context, _ *protocol.Msg, w libagent.Replier) error {
	wait := time.NewTimer(psReportWait)
	select {
	case <-a.reported:
	case <-wait.C:
	case <-ctx.Done():
	}
	wait.Stop()
	list := a.run.List()
	listed := make(map[string]bool, len(list))
	for _, t := range list {
		listed[t.TaskID] = true
	}
	a.execMu.Lock()
	for tid, t := range a.execs {
		if !listed[tid] { // ended, its exec_done on its way
			list = append(list, t)
		}
	}
	a.execMu.Unlock()
	slices.SortFunc(list, func(x, y runner.Info) int { return x.Begin.Compare(y.Begin) })
	tasks := make([]protocol.PsTask, 0, len(list))
	for _, t := range list {
		tasks = append(tasks, protocol.PsTask{TaskID: t.TaskID, Pid: t.Pid, Begin: t.Begin})
	}
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypePsRep, Payload: &protocol.Ps{Tasks: tasks}})
}
