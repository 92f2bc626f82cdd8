package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/internal/installsvc"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/servertest"
)

// After a server restart the server asks a reconnected agent about the
// installs its store holds unfinished (install_status_req): one the agent
// never received (what a server that died between storing the start and
// sending install_run leaves) is settled as failed at once instead of
// staying running for its hour-long timeout; one still running on the
// host stays running, with its actions so far, and ends with the agent's
// report.
func TestInstallAskedAfterRestart(t *testing.T) {
	_, dpkgArgs := dpkgRoot(t)
	g := newGatedDeb(t, "agentfleet-e2e-ask")
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir})
	addr := ts.addr
	bin := buildAgent(t, t.TempDir(), "exec-agent")
	startInstallAgent(t, ts, bin, "inst-ask", "install.dpkg_args = "+dpkgArgs+"\n")
	running := ts.install(t, map[string]any{"id": "inst-ask", "url": g.url, "sha256": sum256(g.deb), "timeout": 3600})
	g.waitStarted()

	// The same install as another task, running in the store, never sent.
	ctx := context.Background()
	task, err := ts.srv.Store().GetTask(ctx, running)
	if err != nil {
		t.Fatal(err)
	}
	task.ID, task.State, task.CreatedAt = "", store.TaskRunning, time.Time{}
	never, err := ts.srv.Store().CreateTaskResults(ctx, task, []store.Result{
		{AgentID: "inst-ask", State: store.ResultRunning, StartedAt: time.Now().UTC()},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()

	ts2 := startServer(t, serverSpec{dataDir: dir, addr: addr})
	// Its timeout is an hour: only the agent's answer ends it this soon.
	st := ts2.installDone(t, never.ID, 60*time.Second)
	if len(st.Hosts) != 1 || st.Hosts[0].State != "failed" || st.Hosts[0].Msg != installsvc.MsgUnknown {
		t.Fatalf("the install the agent never received: %+v", st)
	}
	eventually.Within(t, 30*time.Second, "the task of the install never received to end", func() bool {
		var v struct{ State string }
		_ = json.Unmarshal(ts2.get("/api/tasks/"+never.ID).Payload, &v)
		return v.State == "done" || v.State == "failed"
	})

	// The install that runs on the host was asked about too: it is not
	// settled, and its log so far is there.
	e := ts2.get("/api/install/status?task_id=" + running)
	var cur installStatus
	if err := json.Unmarshal(e.Payload, &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Done || cur.Hosts[0].State != "running" || len(cur.Actions) < 1 || cur.Actions[0].Action != "download" {
		t.Fatalf("the running install after the restart: %s", e.Payload)
	}
	g.release()
	st = ts2.installDone(t, running, 60*time.Second)
	if len(st.Actions) != 3 || st.Hosts[0].State != "ok" || !st.Actions[2].OK {
		t.Fatalf("the running install's end: %+v", st)
	}
	m := metricsText(t, ts2)
	if !strings.Contains(m, `agentserver_install_status_asked_total{result="unknown"} 1`) ||
		strings.Contains(m, `agentserver_install_status_asked_total{result="sent"} 0`) {
		t.Errorf("metrics: %s", grepLines(m, "install_status_asked"))
	}
}

// An install_run lost on a link that breaks right after it was sent: when
// the agent reconnects, the server asks it about the install it still
// waits for, and the answer (no record of it) settles the host at once
// rather than after the install's hour-long timeout.
func TestInstallAskedAfterReconnect(t *testing.T) {
	_, dpkgArgs := dpkgRoot(t)
	ts := startServer(t, serverSpec{})
	proxy, err := servertest.NewProxy(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	bin := buildAgent(t, t.TempDir(), "exec-agent")
	startInstallAgentIn(t, ts, bin, "inst-lost", "install.dpkg_args = "+dpkgArgs+"\n", t.TempDir(), proxy.Addr())

	proxy.Lose(true) // install_run goes nowhere
	id := ts.install(t, map[string]any{"id": "inst-lost", "url": "http://127.0.0.1:9/never.deb", "timeout": 3600})
	eventually.Within(t, 30*time.Second, "install_run to be sent", func() bool {
		return strings.Contains(metricsText(t, ts), "\nagentserver_installs_started_total 1\n")
	})
	proxy.Cut()
	proxy.Lose(false)
	st := ts.installDone(t, id, 60*time.Second)
	if len(st.Hosts) != 1 || st.Hosts[0].State != "failed" || st.Hosts[0].Msg != installsvc.MsgUnknown {
		t.Fatalf("the lost install after the reconnect: %+v", st)
	}
}
