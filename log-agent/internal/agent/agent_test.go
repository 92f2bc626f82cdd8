package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/kvconf"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/log-agent/internal/sink"
	"github.com/agentfleet/log-agent/internal/tail"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestManifestAndDefaultConfig(t *testing.T) {
	m, conf := agenttest.ShippedConfig(t, filepath.Join("..", "..", "conf"))
	got := &Config{}
	if err := kvconf.Unmarshal(conf, got, kvconf.File("conf/agent.conf"), kvconf.Strict(true)); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	got.Collect.K8sNode, want.Collect.K8sNode = "", "" // $HOSTNAME is read from the environment
	if !reflect.DeepEqual(got.Collect, want.Collect) {
		t.Errorf("conf/agent.conf collect = %+v\nDefaultConfig         %+v", got.Collect, want.Collect)
	}
	entries, err := kvconf.Parse(strings.NewReader(string(conf)), "conf/agent.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Key, "collect.") && m.Lookup(e.Key) == nil {
			t.Errorf("%s has no manifest item", e.Key)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		mod  func(*Collect)
		want string
	}{
		{func(c *Collect) { c.Sink = "kafka" }, "collect.sink"},
		{func(c *Collect) { c.Sink = "file:" }, "collect.sink"},
		{func(c *Collect) { c.SpoolSize = 1 << 20 }, "collect.spool_size"},
		{func(c *Collect) { c.DataDir = "" }, "collect.data_dir"},
		{func(c *Collect) { c.Poll = 0 }, "collect.poll"},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg.Collect)
		if err := cfg.Collect.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", cfg.Collect, err, c.want)
		}
	}
	if err := DefaultConfig().Collect.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAgentCollectsIntoFileSink runs the whole agent against an in-process
// server: a logtail project from the projects file, the file sink, and the
// project's status in the self-report.
func TestAgentCollectsIntoFileSink(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("hello %03d \xff\xfe not utf-8", i))
	}
	if err := os.WriteFile(logPath, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	projects := fmt.Sprintf(`[{"name":"app","type":"logtail","paths":[%q],"read_from":"beginning","interval":1}]`, logPath)
	if err := os.WriteFile(filepath.Join(dir, "projects.json"), []byte(projects), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := agenttest.New(t, agenttest.Options{})
	cfg := DefaultConfig()
	cfg.Basic.Server = srv.Addr()
	cfg.Basic.ID = "log-1"
	cfg.Collect.Projects = filepath.Join(dir, "projects.json")
	cfg.Collect.DataDir = filepath.Join(dir, "data")
	cfg.Collect.Sink = "file:" + filepath.Join(dir, "out")
	a := New(cfg, Options{Tail: tail.Options{Poll: 5 * time.Millisecond, Scan: 20 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- libagent.Run(ctx, a.Describe(), libagent.Options{Logger: slog.New(slog.DiscardHandler),
			SkipLimits: true, MonitorInterval: 50 * time.Millisecond})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		a.Wait()
	}()
	// Every line lands in the sink, bytes unchanged.
	var got []string
	// The check below reports a timeout, with what the sink holds.
	_ = eventually.WaitTrue(eventually.DefaultTimeout, "every line in the sink", func() bool {
		got = got[:0]
		srcs, _ := sink.Sources(filepath.Join(dir, "out"), "app")
		for id := range srcs {
			f, err := os.Open(filepath.Join(dir, "out", "app", id+".log"))
			if err != nil {
				continue
			}
			_, _ = sink.ReadEntries(f, func(e sink.Entry) error { got = append(got, string(e.Data)); return nil })
			f.Close()
		}
		return len(got) >= len(lines)
	})
	if !reflect.DeepEqual(got, lines) {
		t.Fatalf("sink holds %d lines, want %d; first %q", len(got), len(lines), got[:min(len(got), 1)])
	}
	// The self-report carries the project's status.
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	for {
		m, err := srv.AwaitPush(rctx, protocol.TypeAgentInfo)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(m)
		var rep struct {
			AI struct {
				Logging []struct {
					Name         string `json:"name"`
					ShippedLines int    `json:"shipped_lines"`
					Files        int    `json:"files"`
				} `json:"logging"`
			} `json:"ai"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		if l := rep.AI.Logging; len(l) == 1 && l[0].Name == "app" && l[0].ShippedLines == len(lines) {
			if l[0].Files != 1 {
				t.Errorf("files = %d, want 1", l[0].Files)
			}
			break
		}
	}
}

// TestStoppedServerProjectReported: a server project stopped on this node
// is in the status, not running, so the server sees the stop done; a
// project removed from the list is not.
func TestStoppedServerProjectReported(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Collect.DataDir = t.TempDir()
	a := New(cfg, Options{})
	a.apply([]protocol.LogProject{{Name: "web", Running: false, Spec: json.RawMessage(`{"name":"web","type":"logtail","paths":["/x/*.log"]}`)}})
	if st := a.Status(); len(st) != 1 || st[0].Name != "web" || st[0].Running || st[0].LastError != "" {
		t.Fatalf("status %+v, want web not running", st)
	}
	a.apply(nil)
	if st := a.Status(); len(st) != 0 {
		t.Fatalf("status after removal %+v", st)
	}
}
