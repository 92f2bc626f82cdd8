package hostmetrics

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// AgentType is the come.name of the agents the metrics requests go to.
const AgentType = "metrics-agent"

// ErrUnexpectedReply: the agent answered with a message of another type
// (HTTP 503).
var ErrUnexpectedReply = errors.New("unexpected reply type")

func unexpected(rep *protocol.Msg, to protocol.Type) error {
	return fmt.Errorf("%w %d (%s) to %s", ErrUnexpectedReply, int(rep.Type), rep.Type, to)
}

// ask sends req to the agent and returns the payload of its reply, which
// must be of type want: another type, or none, is ErrUnexpectedReply.
func ask[P any](ctx context.Context, s *Service, agentID string, req *protocol.Msg, want protocol.Type) (*P, error) {
	rep, err := s.o.Hub.Call(ctx, agentID, req)
	if err != nil {
		return nil, err
	}
	p := protocol.PayloadOf[P](rep)
	if rep.Type != want || p == nil {
		return nil, unexpected(rep, req.Type)
	}
	return p, nil
}

// Static asks the agent for its static facts (30 → 31).
func (s *Service) Static(ctx context.Context, agentID string) (*Static, error) {
	st, err := ask[protocol.HMStatic](ctx, s, agentID, &protocol.Msg{Type: protocol.TypeHMStaticReq}, protocol.TypeHMStaticRep)
	if err != nil {
		return nil, err
	}
	return FromStatic(st), nil
}

// DynamicRequest selects the categories of Dynamic, the process list limit
// (Top, 0 = all) and the connection kinds (nil = all).
type DynamicRequest struct {
	Usage, Process, Connections, Temperatures bool

	Top   int
	Kinds []string
}

// Dynamic asks the agent for fresh dynamic data (32 → 33). Top and Kinds
// are applied again to the reply, for agents that ignore them. A requested
// list category the agent left out is empty, not null.
func (s *Service) Dynamic(ctx context.Context, agentID string, req DynamicRequest) (*Dynamic, error) {
	q := &protocol.HMDynamicReq{Req: []int{}, Top: req.Top, AConns: req.Kinds}
	for _, c := range []struct {
		on  bool
		cat int
	}{{req.Usage, protocol.HMReqUsage}, {req.Process, protocol.HMReqProcess}, {req.Connections, protocol.HMReqConnections}, {req.Temperatures, protocol.HMReqTemperatures}} {
		if c.on {
			q.Req = append(q.Req, c.cat)
		}
	}
	d, err := ask[protocol.HMDynamicRep](ctx, s, agentID, &protocol.Msg{Type: protocol.TypeHMDynamicReq, Payload: q}, protocol.TypeHMDynamicRep)
	if err != nil {
		return nil, err
	}
	out := &Dynamic{}
	if req.Usage && d.Usage != nil {
		out.Usage = FromUsage(d.Usage)
	}
	if req.Process {
		out.Process = TopProcesses(FromProcesses(d.Process), req.Top)
	}
	if req.Connections {
		out.Connections = FilterConnections(FromConnections(d.Connections), req.Kinds)
	}
	if req.Temperatures {
		out.Temperatures = FromTemperatures(d.Temperatures)
	}
	return out, nil
}

// Status is the payload of GET /api/metrics/{id}/status.
type Status struct {
	// Jobs and AllowConns are the agent's answer to type 34 (absent with
	// ?cached=1, where Reported is the source).
	Jobs       []StatusJob `json:"jobs"`
	AllowConns []string    `json:"allow_conns"`
	JobStatus
}

// StatusJob is a running job and its interval in seconds (as 1.5).
type StatusJob struct {
	Name     string `json:"name"`
	Interval int64  `json:"interval"`
}

// Status asks the agent for its running jobs (34 → 35) and adds what the
// server knows from type 37 and from the last change it sent.
func (s *Service) Status(ctx context.Context, agentID string) (*Status, error) {
	rep, err := ask[protocol.HMStatusRep](ctx, s, agentID, &protocol.Msg{Type: protocol.TypeHMQueryCollect}, protocol.TypeHMCollectStatus)
	if err != nil {
		return nil, err
	}
	st := &Status{Jobs: make([]StatusJob, 0, len(rep.Jobs)), AllowConns: orEmpty(rep.AConns)}
	for _, j := range rep.Jobs {
		st.Jobs = append(st.Jobs, StatusJob{Name: j.Name, Interval: int64(j.Interval / time.Second)})
	}
	st.JobStatus, _ = s.Jobs(agentID)
	return st, nil
}

// SetJobs tells the agent which jobs should run (type 36, which has no
// reply in v1) and records the request; the next type-37 report that lists
// exactly these jobs marks it confirmed.
func (s *Service) SetJobs(ctx context.Context, agentID string, jobs []string) (JobRequest, error) {
	msg := &protocol.Msg{Type: protocol.TypeHMChangeCollectStatus, Payload: &protocol.HMChangeStatus{Jobs: jobs}}
	// The request is recorded before it is sent: an agent that reports its
	// new jobs at once could otherwise be heard before the request exists,
	// and the change would stay unconfirmed until its next report.
	now := s.o.Now()
	prev, req := s.setRequested(agentID, jobs, now)
	if err := s.o.Hub.Send(ctx, agentID, msg); err != nil {
		s.undoRequested(agentID, prev, req)
		return JobRequest{}, err
	}
	return JobRequest{Time: now, Jobs: jobs}, nil
}

// FleetResult is the payload of PUT /api/metrics/status.
type FleetResult struct {
	Total   int `json:"total"`
	Success int `json:"success"`
	Failure int `json:"failure"`
}

// SetFleet starts (every job) or stops (no job) collection on every
// connected metrics-agent whose OS is os (any when ""), at most
// FleetConcurrency at a time. Each agent gets the type-36 change followed by
// a type-34 query, within perAgent: an agent counts as a success when it
// answered the query (so it was alive after receiving the change), as a
// failure when the send or the query failed (gone, timed out, error reply).
// ctx ending stops launching: the agents not contacted count as failures.
// keep, when not nil, limits the agents to those it accepts (a token's
// selector).
func (s *Service) SetFleet(ctx context.Context, start bool, os string, perAgent time.Duration, keep func(id string) bool) FleetResult {
	var targets []string
	for _, in := range s.o.Hub.Sessions() {
		if in.Type == AgentType && (os == "" || strings.EqualFold(in.OS, os)) && (keep == nil || keep(in.ID)) {
			targets = append(targets, in.ID)
		}
	}
	jobs := []string{}
	if start {
		jobs = JobNames()
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.o.FleetConcurrency)
launch:
	for _, id := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		wg.Go(func() {
			defer func() { <-sem }()
			defer func() {
				if r := recover(); r != nil { // counted as a failure
					s.log.Error("hostmetrics: panic in a fleet job change", "agent", id, "panic", r, "stack", string(debug.Stack()))
				}
			}()
			actx, cancel := context.WithTimeout(ctx, perAgent)
			defer cancel()
			if err := s.setAndCheck(actx, id, jobs); err != nil {
				s.log.Info("hostmetrics: fleet job change failed", "agent", id, "start", start, "err", err)
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	n := int(ok.Load())
	return FleetResult{Total: len(targets), Success: n, Failure: len(targets) - n}
}

func (s *Service) setAndCheck(ctx context.Context, id string, jobs []string) error {
	if _, err := s.SetJobs(ctx, id, jobs); err != nil {
		return err
	}
	rep, err := s.o.Hub.Call(ctx, id, &protocol.Msg{Type: protocol.TypeHMQueryCollect})
	if err != nil {
		return err
	}
	if rep.Type != protocol.TypeHMCollectStatus {
		return unexpected(rep, protocol.TypeHMQueryCollect)
	}
	return nil
}
