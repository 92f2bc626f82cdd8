//go:build unix

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/internal/testserver"
	"github.com/agentfleet/jkframe/eventually"
)

// scaleServer is a server for the scale tests and benchmarks (testing.TB,
// unlike startServer).
type scaleServer struct {
	addr   string
	client *http.Client
}

func startScaleServer(tb testing.TB) *scaleServer {
	tb.Helper()
	run := testserver.Start(tb, testserver.Config("scale", tb.TempDir()), server.Options{ShutdownTimeout: 10 * time.Second})
	s := &scaleServer{addr: run.Addr(), client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{}}}
	tb.Cleanup(s.client.CloseIdleConnections)
	return s
}

func (s *scaleServer) call(tb testing.TB, method, path string, body any) envelope {
	tb.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, r)
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := s.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	e := envelope{status: resp.StatusCode, header: resp.Header, body: b}
	if err := json.Unmarshal(b, &e); err != nil {
		tb.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, b)
	}
	return e
}

// waitListed waits until the server lists n online exec-agents: a
// simulated agent counts itself connected when the handshake reply
// arrives, which can be a moment before the server's listing (and a task's
// selector) includes it.
func (s *scaleServer) waitListed(tb testing.TB, n int) {
	tb.Helper()
	want := strconv.Itoa(n)
	eventually.Poll{Timeout: 2 * time.Minute}.NoError(tb, want+" online exec-agents listed", func() error {
		e := s.call(tb, "GET", "/api/agents?type=exec-agent&online=true&size=1", nil)
		if got := e.header.Get("X-Total-Count"); e.status != 200 || got != want {
			return fmt.Errorf("status %d, X-Total-Count %q", e.status, got)
		}
		return nil
	})
}

// runTrue runs `true` on every simulated agent and returns the finished
// task and how long it took from POST to done (every result stored).
func (s *scaleServer) runTrue(tb testing.TB, n int, concurrency any) (taskView, time.Duration) {
	tb.Helper()
	s.waitListed(tb, n)
	start := time.Now()
	e := s.call(tb, "POST", "/api/tasks", map[string]any{"selector": map[string]any{"type": "exec-agent"}, "cmd": "true", "concurrency": concurrency})
	var p struct{ ID string }
	if e.status != 200 || json.Unmarshal(e.Payload, &p) != nil {
		tb.Fatalf("create: %d %s", e.status, e.Msg)
	}
	var v taskView
	for {
		e := s.call(tb, "GET", "/api/tasks/"+p.ID+"?size=1", nil)
		v = taskView{}
		if err := json.Unmarshal(e.Payload, &v); err != nil {
			tb.Fatalf("get: %v", err)
		}
		if v.State == "done" || v.State == "failed" || v.State == "cancelled" {
			break
		}
		if time.Since(start) > 2*time.Minute {
			tb.Fatalf("task not done: %+v", v.Summary)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	if v.State != "done" || v.Summary.OK != n || v.Summary.Total != n {
		tb.Fatalf("task %s: %+v", v.State, v.Summary)
	}
	return v, took
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFleetConcurrencyCap: with concurrency 100 no more than 100 commands
// are in flight, as the scheduler counts them and as the agents do, and
// the scheduler does fill its cap: the agents hold every exec until 100
// are in flight at once, so how fast this machine dispatches does not
// matter (the 101st in flight would show in their peak).
func TestFleetConcurrencyCap(t *testing.T) {
	n := 1000
	if tasksRace {
		n = 200
	}
	s := startScaleServer(t)
	sc := startSimChild(t, s.addr, n, 20*time.Millisecond, 100)
	sc.connect(t, n)
	v, took := s.runTrue(t, n, 100)
	st := sc.stats(t)
	if v.MaxInFlight == nil || *v.MaxInFlight != 100 || st.Peak != 100 || st.Execs != int64(n) {
		maxInFlight := "none"
		if v.MaxInFlight != nil {
			maxInFlight = strconv.Itoa(*v.MaxInFlight)
		}
		t.Fatalf("scheduler max in flight %s, agents' peak %d, execs %d; want 100, 100, %d", maxInFlight, st.Peak, st.Execs, n)
	}
	t.Logf("%d agents, concurrency 100, 20 ms per exec: %s; scheduler high water %d, agents' peak %d", n, took, *v.MaxInFlight, st.Peak)
}

// BenchmarkFleetTrue10k: a fleet task of `true` on 10,000 simulated
// agents, end to end (POST to every result stored), concurrency unlimited
// and 100.
func BenchmarkFleetTrue10k(b *testing.B) {
	const n = 10000
	s := startScaleServer(b)
	sc := startSimChild(b, s.addr, n, 0, 0)
	sc.connect(b, n)
	for _, c := range []struct {
		name string
		conc any
	}{{"unlimited", nil}, {"concurrency100", 100}} {
		b.Run(c.name, func(b *testing.B) {
			var last taskView
			before := sc.stats(b)
			cpu0 := cpuTime()
			for b.Loop() {
				last, _ = s.runTrue(b, n, c.conc)
			}
			// The server's CPU time per run (it shares the test process; the
			// agents run in the child): on a shared machine the wall time
			// depends on the other load, this does not.
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "server-cpu-s/op")
			st := sc.stats(b)
			if st.Execs-before.Execs != int64(b.N)*n {
				b.Fatalf("agents ran %d execs, want %d", st.Execs-before.Execs, b.N*n)
			}
			if last.MaxInFlight == nil || c.conc != nil && *last.MaxInFlight > 100 {
				b.Fatalf("scheduler max in flight %v", last.MaxInFlight)
			}
			b.ReportMetric(float64(*last.MaxInFlight), "max-in-flight")
		})
	}
}
