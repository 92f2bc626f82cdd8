package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/utils"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

// Our server: the jobs due together go out in one hm_dynamic_rep; each job
// keeps its own interval; hm_agent_status counts what was sent.
func TestScheduleOurServer(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	r := start(t, spec{srv: srv})
	if _, err := srv.WaitAgent(timeout(t)); err != nil {
		t.Fatal(err)
	}

	// At start every job runs once.
	st := awaitPush(t, srv, protocol.TypeHMStaticRep)
	if st.TID != "" || st.HMStatic() == nil || st.HMStatic().Host.Name == "" || len(st.HMStatic().User) == 0 {
		t.Fatalf("static push = %+v", st)
	}
	first := awaitPush(t, srv, protocol.TypeHMDynamicRep).HMDynamicRep()
	if got := categories(first); !slices.Equal(got, []string{"usage", "process", "conns", "temps"}) {
		t.Fatalf("first dynamic push carries %v, want every category in one message", got)
	}
	if !first.Begin.Equal(t0) || len(first.Process) != 4 || len(first.Connections) == 0 || len(first.Temperatures) == 0 {
		t.Fatalf("first dynamic push: begin %v, %d processes, %d conns, %d temps", first.Begin, len(first.Process), len(first.Connections), len(first.Temperatures))
	}
	status := awaitPush(t, srv, protocol.TypeHMAgentStatus).HMAgentStatus()
	if len(status.Jobs) != 5 || status.Warnings != 0 || status.Jobs[0].Count != 0 {
		t.Fatalf("first status = %+v; want 5 jobs, nothing sent yet", status)
	}

	// Then usage every 5s, status every 30s, the 1m jobs together at 1m.
	var usage, full, statuses int
	for {
		at := r.clock.fire(t)
		if at.Sub(t0) > time.Minute {
			t.Fatalf("fired at %v: nothing due at +1m?", at.Sub(t0))
		}
		if at.Sub(t0)%(5*time.Second) != 0 {
			t.Fatalf("a timer fired at +%v, off every schedule", at.Sub(t0))
		}
		rep := awaitPush(t, srv, protocol.TypeHMDynamicRep).HMDynamicRep()
		if !rep.Begin.Equal(at) {
			t.Fatalf("push at +%v has begin +%v", at.Sub(t0), rep.Begin.Sub(t0))
		}
		want := []string{"usage"}
		if at.Sub(t0) == time.Minute {
			want = []string{"usage", "process", "conns", "temps"}
		}
		if got := categories(rep); !slices.Equal(got, want) {
			t.Fatalf("push at +%v carries %v, want %v", at.Sub(t0), got, want)
		}
		usage++
		if len(want) > 1 {
			full++
		}
		if at.Sub(t0)%(30*time.Second) == 0 {
			status = awaitPush(t, srv, protocol.TypeHMAgentStatus).HMAgentStatus()
			statuses++
		}
		noPush(t, srv, protocol.TypeHMStaticRep)
		if at.Sub(t0) == time.Minute {
			break
		}
	}
	if usage != 12 || full != 1 || statuses != 2 {
		t.Fatalf("in 1m: %d usage pushes, %d full, %d status; want 12, 1, 2", usage, full, statuses)
	}
	// The status at +1m goes before that minute's reports.
	want := map[string][2]uint64{ // interval, reports
		"static": {86400, 1}, "usage": {5, 12}, "process": {60, 1}, "conns": {60, 1}, "temps": {60, 1},
	}
	if status.Warnings == 0 {
		t.Error("status counts no warnings; the fixture has some")
	}
	for _, j := range status.Jobs {
		if w := want[j.Name]; j.Interval != w[0] || j.Count != w[1] || j.BytesSent == 0 {
			t.Errorf("status of %s = %+v, want interval %d, %d reports, bytes > 0", j.Name, j, w[0], w[1])
		}
	}
	if next := r.clock.next(t); next.Sub(t0) != 65*time.Second {
		t.Errorf("next timer at +%v, want +65s", next.Sub(t0))
	}
}

// A v1 server (no capabilities) gets one category per hm_dynamic_rep, as
// the 1.x agents send them.
func TestScheduleV1Server(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{V1: true})
	r := start(t, spec{srv: srv})
	if _, err := srv.WaitAgent(timeout(t)); err != nil {
		t.Fatal(err)
	}
	awaitPush(t, srv, protocol.TypeHMStaticRep)
	check := func(at time.Time, want []string) {
		t.Helper()
		for _, cat := range want {
			rep := awaitPush(t, srv, protocol.TypeHMDynamicRep).HMDynamicRep()
			if got := categories(rep); !slices.Equal(got, []string{cat}) || !rep.Begin.Equal(at) {
				t.Fatalf("push carries %v begun at %v, want only %s at %v", got, rep.Begin, cat, at)
			}
		}
		noPush(t, srv, protocol.TypeHMDynamicRep)
	}
	awaitPush(t, srv, protocol.TypeHMAgentStatus) // after the dynamic pushes
	check(t0, []string{"usage", "process", "conns", "temps"})
	at := r.clock.fire(t)
	awaitPush(t, srv, protocol.TypeHMDynamicRep)
	if at.Sub(t0) != 5*time.Second {
		t.Fatalf("second push at +%v, want +5s", at.Sub(t0))
	}
	noPush(t, srv, protocol.TypeHMDynamicRep)
}

// Intervals below their floor run at the floor; task.process.top limits
// pushed lists (not requested ones).
func TestFloorsAndTop(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	r := start(t, spec{srv: srv, mod: func(c *Config) {
		c.Task.Jobs = []string{"usage", "process"}
		c.Task.Usage.Interval = utils.Duration(10 * time.Millisecond)
		c.Task.Process.Interval = utils.Duration(time.Second)
		c.Task.Process.Top = 2
	}})
	ag, err := srv.WaitAgent(timeout(t))
	if err != nil {
		t.Fatal(err)
	}
	rep := awaitPush(t, srv, protocol.TypeHMDynamicRep).HMDynamicRep()
	if len(rep.Process) != 2 {
		t.Errorf("pushed %d processes, want task.process.top = 2", len(rep.Process))
	}
	if next := r.clock.next(t); next.Sub(t0) != time.Second {
		t.Errorf("next push at +%v, want +1s (the usage floor)", next.Sub(t0))
	}
	q := request(t, srv, ag.ID, &protocol.Msg{Type: protocol.TypeHMQueryCollect}).HMStatusRep()
	want := []protocol.HMJob{{Name: "usage", Interval: time.Second}, {Name: "process", Interval: 5 * time.Second}}
	if q == nil || !slices.Equal(q.Jobs, want) || !slices.Equal(q.AConns, []string{"tcp", "udp", "unix"}) {
		t.Fatalf("hm_status_rep = %+v, want jobs %v", q, want)
	}
	d := request(t, srv, ag.ID, &protocol.Msg{Type: protocol.TypeHMDynamicReq, Payload: &protocol.HMDynamicReq{Req: []int{protocol.HMReqProcess}}})
	if d.HMDynamicRep() == nil || len(d.HMDynamicRep().Process) != 4 {
		t.Fatalf("requested process list = %+v, want all 4 processes", d.HMDynamicRep())
	}
}

// While the link is down due jobs wait; they run as soon as it is back.
func TestReconnectRunsDueJobs(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	r := start(t, spec{srv: srv, mod: func(c *Config) { c.Task.Jobs = []string{"usage"} }})
	if _, err := srv.WaitAgent(timeout(t)); err != nil {
		t.Fatal(err)
	}
	awaitPush(t, srv, protocol.TypeHMDynamicRep)
	awaitPush(t, srv, protocol.TypeHMAgentStatus)
	srv.Stop()
	eventually.True(t, "the agent to notice the server is gone", func() bool { return !r.a.rt.Connected() })
	at := r.clock.fire(t) // usage due at +5s while the server is gone
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	rep := awaitPush(t, srv, protocol.TypeHMDynamicRep).HMDynamicRep()
	if !rep.Begin.Equal(at) || rep.Usage == nil {
		t.Fatalf("after the reconnect: %+v, want the usage due at %v", rep, at)
	}
}
