package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/runner"
)

// A task's handler and the pipe to its command live in the agent's
// process: when that process dies (kill -9, a crash, the OOM killer) the
// command runs on, reparented to init, and nobody reads its output or
// reports its end. records keeps, per running exec, a small file that
// names its processes for good (runner.Record: pid, start time, boot id,
// marker); the file is written when the command starts and removed once
// its exec_done is handed to the runtime. The agent that starts next
// finds the files its predecessor left, ends those commands (see
// runner.Reap) and reports each task's end with an exec_done that says
// what happened (protocol.ExecDone.Restarted and Msg), journaled like any result.
//
// The files are not fsynced: they must survive the agent's process, which
// the page cache does; a host crash ends the commands too, and a record
// lost with it leaves the server to end the task after the agent's ps.
type records struct {
	dir string // "": no records (the runtime keeps no state on disk)
	log *slog.Logger
}

// recordsDir is where an agent with state file statePath keeps its task
// records: beside it, "<state without extension>.tasks".
func recordsDir(statePath string) string {
	if statePath == "" {
		return ""
	}
	return strings.TrimSuffix(statePath, filepath.Ext(statePath)) + ".tasks"
}

// taskRecord is one file.
type taskRecord struct {
	runner.Record
	// Report is set once the restart found the task's end, so that an
	// agent dying again before the report is journaled sends the same one.
	Report *orphanReport `json:"report,omitempty"`
}

// orphanReport is the exec_done a restarted agent sends for a task.
type orphanReport struct {
	TaskID string    `json:"-"`
	Code   int       `json:"code"`
	Msg    string    `json:"msg"`
	Time   time.Time `json:"t"`
}

func (r *records) path(tid string) string {
	sum := sha256.Sum256([]byte(tid))
	return filepath.Join(r.dir, hex.EncodeToString(sum[:12])+".json")
}

// write records a started task. It fails only when the file cannot be
// written; the task runs anyway (the caller logs).
func (r *records) write(rec taskRecord) error {
	if r.dir == "" || rec.TaskID == "" {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	// One write of a few hundred bytes: the death of the process cannot
	// tear it (a host crash can; load drops what it cannot read).
	p := r.path(rec.TaskID)
	err = os.WriteFile(p, b, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(r.dir, 0o700); err == nil {
			err = os.WriteFile(p, b, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("task record: %w", err)
	}
	return nil
}

// remove forgets a task.
func (r *records) remove(tid string) {
	if r.dir == "" || tid == "" {
		return
	}
	if err := os.Remove(r.path(tid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log.Warn("exec: removing the task record", "tid", tid, "err", err)
	}
}

// load returns the records a previous agent process left.
func (r *records) load() []taskRecord {
	if r.dir == "" {
		return nil
	}
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("exec: reading task records", "dir", r.dir, "err", err)
		}
		return nil
	}
	var out []taskRecord
	for _, e := range ents {
		p := filepath.Join(r.dir, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(p)
		var rec taskRecord
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil || rec.TaskID == "" {
			r.log.Warn("exec: unreadable task record dropped", "file", p, "err", err)
			_ = os.Remove(p)
			continue
		}
		out = append(out, rec)
	}
	return out
}

// reapOrphans ends what the previous agent process left running and
// returns the reports to send, one per task. It runs before the first
// connection, so no command of a previous process runs on once the agent
// answers anything.
func (a *agent) reapOrphans() []orphanReport {
	recs := a.recs.load()
	reports := make([]orphanReport, len(recs))
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Go(func() {
			if rec.Report == nil {
				rec.Report = a.reapOne(rec.Record)
				if err := a.recs.write(rec); err != nil {
					a.rt.Logger().Warn("exec: recording an orphan's end", "tid", rec.TaskID, "err", err)
				}
			}
			reports[i] = *rec.Report
			reports[i].TaskID = rec.TaskID
		})
	}
	wg.Wait()
	return reports
}

func (a *agent) reapOne(rec runner.Record) *orphanReport {
	log := a.rt.Logger().With("tid", rec.TaskID, "pid", rec.Pid)
	got, err := a.run.Reap(rec)
	now := time.Now()
	switch {
	case err != nil:
		log.Warn("exec: a command of the previous agent process was left alone", "err", err)
		cause := err
		if errors.Is(err, runner.ErrUnverifiable) {
			cause = runner.ErrUnverifiable
		}
		return &orphanReport{Code: protocol.CodeUnknown, Time: now,
			Msg: fmt.Sprintf("agent restarted: command (pid %d) left alone: %v; its exit status and output are lost", rec.Pid, cause)}
	case got == runner.ReapKilled:
		log.Warn("exec: killed a command the previous agent process left running")
		return &orphanReport{Code: protocol.CodeKilled, Time: now,
			Msg: fmt.Sprintf("agent restarted: command killed (pid %d)", rec.Pid)}
	default:
		log.Info("exec: a command of the previous agent process ended while no agent ran")
		return &orphanReport{Code: protocol.CodeUnknown, Time: now,
			Msg: fmt.Sprintf("agent restarted: command (pid %d) ended while the agent was down; its exit status and output since are lost", rec.Pid)}
	}
}

// reportOrphans sends the reports once connected: exec_done with the
// report's code and msg, journaled when the server acks results, and
// forgets each task once its report is handed over. reported is closed
// when all are (or the agent stops): ps waits for it, so that a server
// that asks ps after the reconnect has the reports before the answer.
func (a *agent) reportOrphans(ctx context.Context, reports []orphanReport) {
	defer close(a.reported)
	log := a.rt.Logger()
	handOver(ctx, a, reports, func(r orphanReport) bool {
		err := a.rt.Replier(r.TaskID).ReplyReliable(ctx, &protocol.Msg{Type: protocol.TypeExecDone, Payload: &protocol.ExecDone{
			Code: r.Code, Time: r.Time, Msg: r.Msg, Restarted: true,
		}})
		if err != nil {
			log.Warn("exec: reporting an orphan's end", "tid", r.TaskID, "err", err)
			return false
		}
		log.Info("exec: reported the end of a task of the previous agent process", "tid", r.TaskID, "msg", r.Msg)
		a.recs.remove(r.TaskID)
		return true
	})
}

// handOver sends what a previous agent process left (reports) once the
// agent is connected: send returns whether one was handed to the runtime;
// the others are tried again a second later, until all are or ctx ends.
func handOver[T any](ctx context.Context, a *agent, reports []T, send func(T) bool) {
	for len(reports) > 0 {
		if err := a.rt.WaitConnected(ctx); err != nil {
			return
		}
		var left []T
		for _, r := range reports {
			if !send(r) {
				left = append(left, r)
			}
		}
		reports = left
		if len(reports) > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}
