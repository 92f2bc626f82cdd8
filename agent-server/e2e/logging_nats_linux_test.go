package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/linetest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agentfleet/agent-server/internal/config"
	logcollect "github.com/agentfleet/agent-server/internal/logging"
	"github.com/agentfleet/agent-server/internal/natstest"
)

// TestLoggingForwardNATS runs the real agent-server with forwarding to
// the real NATS JetStream (through a proxy the test cuts) and the real
// log-agent binary: numbered lines written to a file (rotated once) go to
// the embedded store and to the project's stream; NATS is cut while lines
// are stored and the server is restarted during the outage; after NATS is
// back the stream holds every line exactly once, in order per source
// (count and SHA-256), and task_info and /metrics report the forwarding.
func TestLoggingForwardNATS(t *testing.T) {
	addr := natstest.Addr(t)
	bin := logAgentBin(t)
	proxy := natstest.NewProxy(t, addr)
	nc, err := nats.Connect("nats://" + addr)
	lgMust(t, err)
	t.Cleanup(nc.Close) // after the stream's deletion below
	js, err := jetstream.New(nc)
	lgMust(t, err)
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix, subjects := "E2E_"+id+"_", "e2e"+id
	stream := prefix + "fwd"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", stream, err)
		}
	})

	dir := t.TempDir()
	spec := serverSpec{dataDir: filepath.Join(dir, "server"), addr: freeAddr(t), deadAfter: time.Minute, mod: func(c *config.Config) {
		c.Logging.SegmentSize = 1 << 20
		n := &c.Logging.NATS
		n.URL, n.StreamPrefix, n.SubjectPrefix, n.MaxAge = proxy.URL(), prefix, subjects, 0
	}}
	ts := startServer(t, spec)
	runLogAgent(t, bin, filepath.Join(dir, "agent"), "lgn1", ts.addr)
	ts.waitOnline("lgn1")
	logs := filepath.Join(dir, "logs")
	lgMust(t, os.MkdirAll(logs, 0o755))
	path := filepath.Join(logs, "app.log")
	form := url.Values{"pid": {"fwd"}, "type": {"logtail"}, "ids": {"lgn1"}, "dir": {path + "*"},
		"read_from": {"beginning"}, "interval": {"1"}, "batch": {"1000"}}
	if e := ts.do("POST", "/api/logging/config?"+form.Encode(), opToken, nil); e.status != 200 {
		t.Fatalf("config: %d %s", e.status, e.body)
	}
	ts.waitTaskRunning(t, "fwd", "lgn1")

	inStream := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0
		}
		lgMust(t, err)
		info, err := st.Info(ctx)
		lgMust(t, err)
		return int(info.State.Msgs)
	}
	stored := func() int {
		st, err := logcollect.OpenStore(logcollect.StoreOptions{Dir: filepath.Join(spec.dataDir, "logcollect")})
		lgMust(t, err)
		n, err := st.Count("fwd")
		lgMust(t, err)
		return int(n)
	}
	w := &linetest.Writer{Path: path, Keep: 10}
	w.Open(t)
	const step = 6000
	w.Write(t, step)
	lgWait(t, "the first lines in the stream", func() bool { return inStream() >= step })

	// NATS away: the lines are still stored and acknowledged to the agent.
	proxy.Cut(true)
	w.Write(t, step)
	w.RotateRename(t)
	w.Write(t, step)
	lgWait(t, "the lines of the outage shipped to the server", func() bool { return stored() >= 3*step })
	lgWait(t, "the outage in task_info", func() bool {
		f := forwardInfo(t, ts)
		return f.Failing && f.LastError != "" && f.LagBytes > 0
	})
	if n := inStream(); n != step {
		t.Fatalf("%d lines in the stream during the outage, want %d", n, step)
	}

	// The server restarts during the outage; NATS comes back after.
	ts.stop()
	ts = startServer(t, spec)
	w.Write(t, step)
	proxy.Cut(false)
	total := w.N // 4 steps and the 5 late lines the rotation writes into the renamed file
	lgWait(t, fmt.Sprintf("all %d lines in the stream", total), func() bool { return inStream() >= total })
	lgWait(t, "the forwarding caught up", func() bool {
		f := forwardInfo(t, ts)
		return !f.Failing && f.LagBytes == 0
	})
	w.Close()

	// Read the stream back.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	lgMust(t, err)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	lgMust(t, err)
	n := inStream()
	if n != total {
		t.Fatalf("%d messages in the stream, want %d", n, total)
	}
	bySource := map[string][]string{}
	for got := 0; got < n; {
		b, err := cons.Fetch(min(500, n-got), jetstream.FetchMaxWait(5*time.Second))
		lgMust(t, err)
		for m := range b.Messages() {
			h := m.Headers()
			if h.Get("Log-Host") != "lgn1" || h.Get("Log-Project") != "fwd" || h.Get("Nats-Msg-Id") == "" ||
				m.Subject() != subjects+".fwd.lgn1" {
				t.Fatalf("message %s %v", m.Subject(), h)
			}
			bySource[h.Get("Log-Source-Id")] = append(bySource[h.Get("Log-Source-Id")], string(m.Data()))
			got++
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d", got, n)
		}
	}
	sum := linetest.Check(t, total, bySource)
	if f := forwardInfo(t, ts); f.Stream != stream || f.Dropped != 0 || f.Lines == 0 {
		t.Errorf("task_info forward %+v", f)
	}
	m := ts.do("GET", "/metrics", "", nil)
	for _, s := range []string{`agentserver_logging_forward_lines_total{project="fwd"}`, `agentserver_logging_forward_connected 1`,
		`agentserver_logging_forward_lag_bytes{host="lgn1",project="fwd"} 0`} {
		if !strings.Contains(string(m.body), s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	t.Logf("%d lines, %d sources, 1 rotation, NATS cut and restored, 1 server restart; sha256 %x…", total, len(bySource), sum[:8])
}

type forwardInfoT struct {
	Stream    string `json:"stream"`
	Lines     int64  `json:"lines"`
	Dropped   int64  `json:"dropped"`
	LagBytes  int64  `json:"lag_bytes"`
	Failing   bool   `json:"failing"`
	LastError string `json:"last_error"`
}

func forwardInfo(t *testing.T, ts *testServer) forwardInfoT {
	t.Helper()
	e := ts.do("GET", "/api/logging/task_info?pid=fwd", opToken, nil)
	var ti struct {
		Forward *forwardInfoT `json:"forward"`
	}
	if e.status != 200 || json.Unmarshal(e.Payload, &ti) != nil || ti.Forward == nil {
		t.Fatalf("task_info: %d %s", e.status, e.body)
	}
	return *ti.Forward
}
