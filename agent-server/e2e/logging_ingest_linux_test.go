package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent/logship"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/logging"
)

// TestLoggingTaskInfoPending: task_info shows start and stop at once, as
// pending until the node reports; the node's report then decides. The fake
// log-agent reports only when the test makes it, so every step is
// deterministic.
func TestLoggingTaskInfoPending(t *testing.T) {
	ts := startServer(t, serverSpec{})
	fa := newFakeLogAgent(t, ts.addr, "lp1")
	ts.waitOnline("lp1")
	if e := ts.do("POST", "/api/logging/config", opToken, strings.NewReader(`{"pid":"pend","type":"logtail","ids":["lp1","lp-off"],"dir":"/var/log/*.log"}`)); e.status != 200 {
		t.Fatalf("config: %d %s", e.status, e.body)
	}
	post := func(path string) {
		t.Helper()
		if e := ts.do("POST", path+"?"+url.Values{"pid": {"pend"}}.Encode(), opToken, nil); e.status != 200 {
			t.Fatalf("%s: %d %s", path, e.status, e.body)
		}
	}
	node := func(id string) (status string, pending, online bool) {
		t.Helper()
		for _, n := range taskInfo(t, ts, "pend").Nodes {
			if n.ID == id {
				return n.Status, n.Pending, n.Online
			}
		}
		t.Fatalf("task_info has no node %s", id)
		return
	}
	expect := func(when, status string, pending bool) {
		t.Helper()
		if s, p, o := node("lp1"); s != status || p != pending || !o {
			t.Errorf("%s: lp1 %s pending=%v online=%v, want %s pending=%v", when, s, p, o, status, pending)
		}
		// The offline node never shows running.
		if s, _, o := node("lp-off"); s != "stoped" || o {
			t.Errorf("%s: offline node %s online=%v", when, s, o)
		}
	}
	expect("configured, no report yet", "running", true)
	post("/api/logging/stop")
	expect("right after stop", "stoped", true)
	post("/api/logging/start")
	expect("right after start", "running", true)

	report := func(running bool) {
		b, _ := json.Marshal(map[string]any{"name": "pend", "type": "logtail", "running": running, "lines": 7})
		m := &protocol.Msg{Type: protocol.TypeLogStatus}
		if err := m.SetExtra(protocol.KeyLogStatus, &protocol.LogStatus{Projects: []json.RawMessage{b}}); err != nil {
			t.Fatal(err)
		}
		fa.send(m)
	}
	report(true)
	lgWait(t, "lp1's report of running", func() bool { _, p, _ := node("lp1"); return !p })
	expect("reported running", "running", false)
	// A node that reports the project not running (it failed to start it)
	// is stoped, confirmed.
	report(false)
	lgWait(t, "lp1's report of not running", func() bool { s, _, _ := node("lp1"); return s == "stoped" })
	expect("reported not running", "stoped", false)
	post("/api/logging/stop")
	expect("stop after the report", "stoped", true)
}

// TestLoggingIngestOffReader: a log batch whose append is held (a slow
// disk) does not hold the agent's other messages: an exec on the same
// agent runs to its end meanwhile, and the batch is acknowledged only once
// it is written.
func TestLoggingIngestOffReader(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan string, 4)
	ts := startServer(t, serverSpec{logging: func(o *logging.Options) {
		o.BeforeAppend = func(project, host string) {
			entered <- project + "/" + host
			<-release
		}
	}})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the server stops (cleanups run last first)
	// li1 is an exec-agent that ships logs too (log.v1): its exec results
	// and its batches share one connection. li-log, a log-agent, makes the
	// project acceptable (a project needs a log-agent among its targets).
	newFakeLogAgent(t, ts.addr, "li-log")
	fa := startFake(t, ts.addr, "li1", "exec-agent", protocol.CapLog)
	ts.waitOnline("li-log")
	ts.waitOnline("li1")
	if e := ts.do("POST", "/api/logging/config", opToken, strings.NewReader(`{"pid":"slow","type":"logtail","ids":["li-log","li1"],"dir":"/var/log/*.log"}`)); e.status != 200 {
		t.Fatalf("config: %d %s", e.status, e.body)
	}
	block := logship.AppendRecord(nil, &logship.Record{Offset: 0, Time: time.Now().UnixNano(), Data: []byte("held line")})
	m := &protocol.Msg{Type: protocol.TypeLogBatch, TID: "lb-held-1"}
	if err := m.SetExtra(protocol.KeyLogBatch, &protocol.LogBatch{Project: "slow", Seq: 1, Lines: 1, Bytes: 9,
		Sources: []protocol.LogSource{{ID: "src1", Name: "/var/log/a.log", First: 0, End: 10}}, Data: logship.Compress(nil, block)}); err != nil {
		t.Fatal(err)
	}
	fa.send(m)
	select {
	case who := <-entered:
		if who != "slow/li1" {
			t.Fatalf("append of %s", who)
		}
	case <-time.After(time.Minute):
		t.Fatal("the batch never reached the store")
	}
	// The append is held: an exec on the same connection still runs.
	e := ts.json("POST", "/api/exec/li1/run", map[string]any{"cmd": "echo while-ingest-blocked"})
	var run struct {
		Result struct {
			Data  []byte `json:"data"`
			State string `json:"state"`
		} `json:"result"`
	}
	if e.status != 200 || json.Unmarshal(e.Payload, &run) != nil || run.Result.State != "ok" || string(run.Result.Data) != "while-ingest-blocked\n" {
		t.Fatalf("exec while the ingest is held: %d %s", e.status, e.body)
	}
	fa.mu.Lock()
	early := len(fa.logAcks)
	fa.mu.Unlock()
	if early != 0 {
		t.Fatalf("batch acknowledged before it was written (%d acks)", early)
	}
	unblock()
	lgWait(t, "the batch's ack", func() bool {
		fa.mu.Lock()
		defer fa.mu.Unlock()
		return len(fa.logAcks) == 1
	})
	fa.mu.Lock()
	a := fa.logAcks[0]
	fa.mu.Unlock()
	if !a.OK || a.Stored != 1 || a.Seq != 1 || a.Project != "slow" {
		t.Fatalf("ack %+v", a)
	}
	q := ts.do("GET", "/api/logging/query?pid=slow", opToken, nil)
	var got struct {
		Lines []LogLineT `json:"lines"`
	}
	if q.status != 200 || json.Unmarshal(q.Payload, &got) != nil || len(got.Lines) != 1 || got.Lines[0].Line != "held line" {
		t.Fatalf("query: %d %s", q.status, q.body)
	}
}

// TestLoggingIngestQueueFull: a session whose ingest queue stays full past
// the ingest wait is disconnected (counted), not buffered without bound;
// the agent reconnects and sends again what was not acknowledged.
func TestLoggingIngestQueueFull(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, serverSpec{logging: func(o *logging.Options) {
		o.IngestQueue, o.IngestWait = 1, 200*time.Millisecond
		o.BeforeAppend = func(string, string) { <-release }
	}})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	fa := newFakeLogAgent(t, ts.addr, "lq1")
	ts.waitOnline("lq1")
	if e := ts.do("POST", "/api/logging/config", opToken, strings.NewReader(`{"pid":"full","type":"logtail","ids":["lq1"],"dir":"/var/log/*.log"}`)); e.status != 200 {
		t.Fatalf("config: %d %s", e.status, e.body)
	}
	batch := func(seq int) *protocol.Msg {
		block := logship.AppendRecord(nil, &logship.Record{Offset: int64(seq) * 10, Data: []byte(fmt.Sprintf("line %d", seq))})
		m := &protocol.Msg{Type: protocol.TypeLogBatch, TID: fmt.Sprintf("lb-full-%d", seq)}
		if err := m.SetExtra(protocol.KeyLogBatch, &protocol.LogBatch{Project: "full", Seq: uint64(seq), Lines: 1, Bytes: 6,
			Sources: []protocol.LogSource{{ID: "s", Name: "/var/log/a.log", First: int64(seq) * 10, End: int64(seq)*10 + 7}}, Data: logship.Compress(nil, block)}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// 1 is held in its append, 2 waits in the queue, 3 finds it full.
	for seq := 1; seq <= 3; seq++ {
		fa.send(batch(seq))
	}
	lgWait(t, "lq1 disconnected by the full queue", func() bool {
		for _, a := range ts.agents("online=true&size=1000") {
			if a.ID == "lq1" {
				return false
			}
		}
		return true
	})
	e := ts.do("GET", "/metrics", opToken, nil)
	if !strings.Contains(string(e.body), `agentserver_logging_ingest_queue_full_total{outcome="disconnected"} 1`) {
		t.Fatalf("metrics: %d, no disconnect counted:\n%s", e.status, grepLines(string(e.body), "ingest_queue"))
	}
	// The agent comes back and sends again what was not acknowledged, one
	// batch at a time: every line is stored once.
	unblock()
	fa.drop()
	fa.connect()
	for seq := 1; seq <= 3; seq++ {
		fa.send(batch(seq))
		lgWait(t, fmt.Sprintf("the ack of batch %d", seq), func() bool {
			fa.mu.Lock()
			defer fa.mu.Unlock()
			return len(fa.logAcks) == seq
		})
		fa.mu.Lock()
		a := fa.logAcks[seq-1]
		fa.mu.Unlock()
		if !a.OK || a.Seq != uint64(seq) || a.Stored+a.Dup != 1 {
			t.Fatalf("ack of batch %d: %+v", seq, a)
		}
	}
	q := ts.do("GET", "/api/logging/query?pid=full", opToken, nil)
	var got struct {
		Lines []LogLineT `json:"lines"`
	}
	if q.status != 200 || json.Unmarshal(q.Payload, &got) != nil || len(got.Lines) != 3 {
		t.Fatalf("query: %d %s", q.status, q.body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
