package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
	"github.com/agentfleet/libagent/statefile"
)

func jobNamesOf(st *protocol.HMAgentStatus) []string {
	var n []string
	for _, j := range st.Jobs {
		n = append(n, j.Name)
	}
	return n
}

func queryJobs(t *testing.T, srv *agenttest.Server, id string) []string {
	t.Helper()
	rep := request(t, srv, id, &protocol.Msg{Type: protocol.TypeHMQueryCollect})
	if rep.Type != protocol.TypeHMCollectStatus || rep.HMStatusRep() == nil {
		t.Fatalf("reply to hm_query_collect = %+v", rep)
	}
	var n []string
	for _, j := range rep.HMStatusRep().Jobs {
		n = append(n, j.Name)
	}
	return n
}

func change(t *testing.T, srv *agenttest.Server, id string, jobs ...string) {
	t.Helper()
	m := &protocol.Msg{Type: protocol.TypeHMChangeCollectStatus, Payload: &protocol.HMChangeStatus{Jobs: jobs}}
	if err := srv.SendRaw(id, mustEncode(t, m)); err != nil { // no tid: v1 sends none and expects no reply
		t.Fatal(err)
	}
}

func mustEncode(t *testing.T, m *protocol.Msg) []byte {
	t.Helper()
	b, err := protocol.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The server switches jobs at run time: the change applies at once, is
// reported by 37 and 35, kept in the state file (the config file is left
// alone) and restored by the next start.
func TestSwitchJobs(t *testing.T) {
	dir := t.TempDir()
	confPath := filepath.Join(dir, "agent.conf")
	statePath := filepath.Join(dir, "agent.state")
	srv := agenttest.New(t, agenttest.Options{})
	conf := fmt.Sprintf("basic.server = %s\nbasic.monitor.enabled = false\ntask.jobs = static,usage,process\ntask.process.qps_limit = 0\n", srv.Addr())
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := spec{srv: srv, configPath: confPath, statePath: statePath}
	r := start(t, s)
	ag, err := srv.WaitAgent(timeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := jobNamesOf(awaitPush(t, srv, protocol.TypeHMAgentStatus).HMAgentStatus()); !slices.Equal(got, []string{"static", "usage", "process"}) {
		t.Fatalf("jobs from the config = %v", got)
	}
	awaitPush(t, srv, protocol.TypeHMDynamicRep)

	// Stop process, start temps; unknown names are ignored.
	change(t, srv, ag.ID, "usage", "temps", "disk")
	st := awaitPush(t, srv, protocol.TypeHMAgentStatus).HMAgentStatus()
	if got := jobNamesOf(st); !slices.Equal(got, []string{"usage", "temps"}) {
		t.Fatalf("status after the change lists %v", got)
	}
	if got := queryJobs(t, srv, ag.ID); !slices.Equal(got, []string{"usage", "temps"}) {
		t.Fatalf("hm_status_rep after the change lists %v", got)
	}
	// temps, started, runs at once; usage keeps its schedule.
	if got := categories(awaitPush(t, srv, protocol.TypeHMDynamicRep).HMDynamicRep()); !slices.Equal(got, []string{"temps"}) {
		t.Fatalf("push after the change carries %v, want temps", got)
	}
	for range 12 { // a minute: usage every 5s, the process job never again
		at := r.clock.fire(t)
		rep := awaitPush(t, srv, protocol.TypeHMDynamicRep).HMDynamicRep()
		if rep.Process != nil {
			t.Fatalf("the stopped process job pushed at +%v", at.Sub(t0))
		}
	}

	state, err := statefile.Load(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var saved []string
	if ok, err := state.Get(StateKey, &saved); !ok || err != nil || !slices.Equal(saved, []string{"usage", "temps"}) {
		t.Fatalf("state file jobs = %v (present %v, err %v)", saved, ok, err)
	}
	if b, _ := os.ReadFile(confPath); !bytes.Equal(b, []byte(conf)) {
		t.Fatalf("the config file was rewritten:\n%s", b)
	}

	// The next start restores the server's choice.
	r.stop()
	srv.Drop()
	r = start(t, s)
	ag, err = srv.WaitFor(timeout(t), ag.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := queryJobs(t, srv, ag.ID); !slices.Equal(got, []string{"usage", "temps"}) {
		t.Fatalf("after a restart hm_status_rep lists %v, want the jobs of the state file", got)
	}
	if !slices.Equal(r.cfg.Task.Jobs, []string{"static", "usage", "process"}) {
		t.Errorf("task.jobs became %v; the config must keep what the operator wrote", r.cfg.Task.Jobs)
	}

	// Stop everything: only the status goes on.
	change(t, srv, ag.ID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := awaitPush(t, srv, protocol.TypeHMAgentStatus).HMAgentStatus()
		if len(st.Jobs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no status with every job stopped")
		}
	}
	if next := r.clock.next(t); next.Sub(r.clock.Now()) != 30*time.Second {
		t.Fatalf("with every job stopped the next timer is in %v, want the 30s status", next.Sub(r.clock.Now()))
	}
	if got := queryJobs(t, srv, ag.ID); len(got) != 0 {
		t.Fatalf("hm_status_rep lists %v after stopping every job", got)
	}
}

// On-demand requests are answered while pushes go on, each with its own tid,
// from the one collector.
func TestConcurrentRequests(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	r := start(t, spec{srv: srv, mod: func(c *Config) { c.Task.Conns.Allow = []string{"tcp"} }})
	ag, err := srv.WaitAgent(timeout(t))
	if err != nil {
		t.Fatal(err)
	}
	awaitPush(t, srv, protocol.TypeHMDynamicRep)

	type call struct {
		req   *protocol.Msg
		check func(*protocol.Msg) error
	}
	dyn := func(top int, kinds []string, req ...int) *protocol.Msg {
		return &protocol.Msg{Type: protocol.TypeHMDynamicReq, Payload: &protocol.HMDynamicReq{Req: req, Top: top, AConns: kinds}}
	}
	calls := []call{
		{dyn(0, nil, 0, 1, 2, 3), func(m *protocol.Msg) error {
			if got := categories(m.HMDynamicRep()); !slices.Equal(got, []string{"usage", "process", "conns", "temps"}) {
				return fmt.Errorf("categories %v", got)
			}
			for _, c := range m.HMDynamicRep().Connections {
				if c.Type != "tcp4" && c.Type != "tcp6" {
					return fmt.Errorf("a %s connection; task.conns.allow is tcp", c.Type)
				}
			}
			return nil
		}},
		{dyn(2, nil, 1), func(m *protocol.Msg) error {
			if n := len(m.HMDynamicRep().Process); n != 2 {
				return fmt.Errorf("%d processes for top 2", n)
			}
			return nil
		}},
		{dyn(0, []string{"unix", "udp"}, 2), func(m *protocol.Msg) error {
			if m.HMDynamicRep().Connections != nil {
				return fmt.Errorf("unix/udp connections returned though only tcp is allowed")
			}
			return nil
		}},
		{dyn(0, []string{"tcp6"}, 2), func(m *protocol.Msg) error {
			for _, c := range m.HMDynamicRep().Connections {
				if c.Type != "tcp6" {
					return fmt.Errorf("a %s connection for tcp6", c.Type)
				}
			}
			return nil
		}},
		{&protocol.Msg{Type: protocol.TypeHMStaticReq}, func(m *protocol.Msg) error {
			if m.Type != protocol.TypeHMStaticRep || m.HMStatic() == nil || m.HMStatic().Kernel.Version == "" {
				return fmt.Errorf("static reply %+v", m)
			}
			return nil
		}},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(calls))
	for round := range 4 {
		for i, c := range calls {
			wg.Go(func() {
				req := *c.req // Send sets the tid: one message per call
				if err := roundTrip(srv, ag.ID, &req, c.check); err != nil {
					errs <- fmt.Errorf("round %d call %d: %w", round, i, err)
				}
			})
		}
	}
	// Pushes keep going meanwhile.
	at := r.clock.fire(t)
	if rep := awaitPush(t, srv, protocol.TypeHMDynamicRep).HMDynamicRep(); !rep.Begin.Equal(at) {
		t.Errorf("push begun at %v, want %v", rep.Begin, at)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func roundTrip(srv *agenttest.Server, id string, req *protocol.Msg, check func(*protocol.Msg) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tid, err := srv.Send(ctx, id, req)
	if err != nil {
		return err
	}
	rep, err := srv.Await(ctx, tid)
	switch {
	case err != nil:
		return err
	case rep.TID != tid:
		return fmt.Errorf("reply tid %q, want %q", rep.TID, tid)
	case rep.Type != protocol.TypeError && rep.Type != req.Type+1:
		return fmt.Errorf("reply of type %d", rep.Type)
	}
	return check(rep)
}
