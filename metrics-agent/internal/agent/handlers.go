package agent

import (
	"context"
	"errors"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/metrics-agent/internal/collect"
)

// handleStatic answers hm_static_req (30) with fresh static facts.
func (a *Agent) handleStatic(ctx context.Context, _ *protocol.Msg, w libagent.Replier) error {
	st, ws := a.col.Static(ctx)
	a.warn("static request", ws)
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeHMStaticRep, Payload: &st.HMStatic})
}

var errNoPayload = errors.New("hm_dynamic_req: missing payload")

// handleDynamic answers hm_dynamic_req (32) with the requested categories.
func (a *Agent) handleDynamic(ctx context.Context, m *protocol.Msg, w libagent.Replier) error {
	if m.HMDynamicReq() == nil {
		return errNoPayload
	}
	req := collect.RequestFrom(*m.HMDynamicReq())
	if req.Top < 0 {
		req.Top = 0
	}
	if req.Connections {
		kinds, dropped := allowedKinds(req.Kinds, a.cfg.Task.Conns.Allow)
		if len(dropped) > 0 {
			a.log.Debug("hm_dynamic_req: unknown connection kinds ignored", "kinds", dropped)
		}
		// collect reads an empty list as "every kind": none allowed means
		// no connections at all.
		req.Connections, req.Kinds = len(kinds) > 0, kinds
	}
	rep, ws := a.col.Dynamic(ctx, req)
	a.warn("dynamic request", ws)
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &rep})
}

// handleQuery answers hm_query_collect (34) with the running jobs.
func (a *Agent) handleQuery(ctx context.Context, _ *protocol.Msg, w libagent.Replier) error {
	rep := &protocol.HMStatusRep{AConns: a.cfg.Task.Conns.Allow}
	for _, j := range a.Enabled() {
		rep.Jobs = append(rep.Jobs, protocol.HMJob{Name: j, Interval: a.cfg.Task.Interval(j)})
	}
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeHMCollectStatus, Payload: rep})
}

// handleChange applies hm_change_collect_status (36); v1 has no reply, so
// bad names are only logged.
func (a *Agent) handleChange(_ context.Context, m *protocol.Msg, _ libagent.Replier) error {
	var jobs []string
	if m.HMChangeStatus() != nil {
		jobs = m.HMChangeStatus().Jobs
	}
	jobs = a.validJobs(jobs)
	a.log.Info("jobs changed by the server", "jobs", jobs)
	a.setJobs(jobs)
	return nil
}
