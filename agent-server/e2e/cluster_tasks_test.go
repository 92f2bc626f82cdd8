//go:build unix

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/syncbuf"

	"github.com/agentfleet/agent-server/internal/natstest"
	"github.com/agentfleet/agent-server/internal/store"
)

// TestClusterTaskTakeover: a fleet task created on s1 is owned by s1. s1
// stops while two of its four commands run, leaving its task running in
// the database with a lease nobody renews; the agents reconnect through
// the shared address (a proxy that moved on to s2). Once the lease has
// ended, s2 takes the task over (owner token 2) and finishes it: the two
// commands that ran on s1's watch are not run again (their journaled
// results arrive at s2), the two never started are launched, each agent's
// command runs exactly once, and the task ends done.
func TestClusterTaskTakeover(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	a := clusterMember(t, dsn, natsURL, "s1")
	var log2 syncbuf.Buffer
	b := clusterMemberSpec(t, dsn, natsURL, "s2", serverSpec{log: &log2})
	front := natstest.NewProxy(t, a.addr) // the fleet's one address
	addr := strings.TrimPrefix(front.URL(), "nats://")

	x := newExecSim()
	ids := []string{"x0", "x1", "x2", "x3"}
	for _, id := range ids {
		x.startExecAgent(t, addr, id)
	}
	for _, id := range ids {
		a.waitOnline(id)
	}
	// Every command waits for the gate, opened once s2 has taken over: the
	// first two run across the takeover.
	gate := filepath.Join(t.TempDir(), "gate")
	cmd := `while [ ! -e '` + gate + `' ]; do sleep 0.05; done; echo "done on $AGENT_ID"`
	id, e := a.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": cmd, "concurrency": 2})
	if id == "" {
		t.Fatalf("create task: %d %s", e.status, e.body)
	}
	owners := a.srv.Store().(store.TaskOwnerStore)
	if o, err := owners.TaskOwnerOf(context.Background(), id); err != nil || o.Member != "s1" || o.Token != 1 {
		t.Fatalf("owner at creation: %+v %v", o, err)
	}
	eventually.Within(t, 30*time.Second, "two commands running", func() bool { return x.cur.Load() == 2 })

	front.Retarget(b.addr)
	a.stop()
	if n := x.started.Load(); n != 2 {
		t.Fatalf("started %d before s1 stopped", n)
	}
	if v := b.task(t, id); v.State != "running" {
		t.Fatalf("the task right after s1 stopped: %s", v.State)
	}

	eventually.Within(t, 60*time.Second, "s2 takes the task over", func() bool {
		return strings.Contains(log2.String(), "tasks: resuming a fleet task")
	})
	if l := log2.String(); !strings.Contains(l, "tasks: took over a task") || !strings.Contains(l, "to_launch=2 awaiting_results=2") {
		t.Errorf("s2 did not resume the task with two commands to await and two to launch:\n%s", linesWith([]byte(log2.String()), "tasks: "))
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	v := b.waitTask(t, id, 90*time.Second)
	if v.State != "done" || v.Summary.OK != 4 || x.started.Load() != 4 {
		t.Fatalf("after the takeover: %+v (started %d)", v, x.started.Load())
	}
	for _, r := range v.Agents {
		if r.OutputHead != "done on "+r.Agent+"\n" {
			t.Errorf("%s: output %q", r.Agent, r.OutputHead)
		}
	}
	o, err := b.srv.Store().(store.TaskOwnerStore).TaskOwnerOf(context.Background(), id)
	if err != nil || o.Member != "s2" || o.Token != 2 {
		t.Errorf("owner after the takeover: %+v %v", o, err)
	}
}
