package execsvc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
)

// env is what every exec of a Service works with, built once by New: the
// collaborators an Exec has, so that it does not reach into its Service.
// Its fields do not change after New.
type env struct {
	cfg     limits           // sizes and windows (Options)
	now     func() time.Time // clock of task and result times (Options.Now)
	journal Store            // the task, its results and output stream
	commit  *flusher         // group-commits the execs' store writes
	agents  sessions         // the hub: kill
	m       *metrics
	log     *slog.Logger
	limit   *rate.Limiter // log lines about agents' stray messages
	// ctx ends when the Service closes; wg counts the execs' goroutines,
	// which the Service waits for.
	ctx context.Context
	wg  *sync.WaitGroup
}

// sessions is the part of the hub an exec uses.
type sessions interface {
	Session(agentID string) (*hub.Session, bool)
}

// limits are the sizes and windows of Options an exec works within.
type limits struct {
	HeadSize, TailSize    int
	FlushBytes            int
	FlushDelay            time.Duration
	StartFlushDelay       time.Duration
	MaxPending            int
	Grace                 time.Duration
	LateData, LateDataMax time.Duration
}

func limitsOf(o Options) limits {
	return limits{
		HeadSize: o.HeadSize, TailSize: o.TailSize, FlushBytes: o.FlushBytes, FlushDelay: o.FlushDelay,
		StartFlushDelay: o.StartFlushDelay,
		MaxPending:      o.MaxPending, Grace: o.Grace, LateData: o.LateData, LateDataMax: o.LateDataMax,
	}
}

// killTask asks the agent to kill a task: by task id with stream.v1
// (ErrNoSuchTask when it has none such), else the v1 exec_kill by pid,
// which has no reply.
func (v *env) killTask(ctx context.Context, agentID, taskID string, pid int) error {
	sess, ok := v.agents.Session(agentID)
	if !ok {
		return fmt.Errorf("kill on agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	if !sess.HasCap(protocol.CapStream) {
		if pid == 0 {
			return fmt.Errorf("kill task %s on agent %s: %w (no pid yet)", taskID, agentID, ErrNoSuchTask)
		}
		if err := sess.Send(ctx, &protocol.Msg{Type: protocol.TypeExecKill, Payload: &protocol.ExecKill{Pid: pid}}); err != nil {
			return fmt.Errorf("kill pid %d on agent %s: %w", pid, agentID, err)
		}
		return nil
	}
	rep, err := sess.Call(ctx, &protocol.Msg{Type: protocol.TypeExecKill, Payload: &protocol.ExecKill{Pid: pid, TaskID: taskID}})
	if err != nil {
		return fmt.Errorf("kill task %s on agent %s: %w", taskID, agentID, err)
	}
	if rep.Type != protocol.TypeExecKillRep || rep.ExecKillRep() == nil {
		return fmt.Errorf("kill task %s on agent %s: unexpected reply type %d", taskID, agentID, rep.Type)
	}
	if !rep.ExecKillRep().OK {
		if rep.ExecKillRep().Msg == protocol.MsgNoSuchTask {
			return fmt.Errorf("kill task %s on agent %s: %w", taskID, agentID, ErrNoSuchTask)
		}
		return sess.AgentError(rep.TID, rep.ExecKillRep().Msg, rep.ExecKillRep().Kind)
	}
	return nil
}
