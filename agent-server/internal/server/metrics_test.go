package server

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/agent-server/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// recordingRegisterer remembers every collector registered through it.
type recordingRegisterer struct {
	prometheus.Registerer
	mu sync.Mutex
	cs []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// TestMetricDefinitions lists every metric the server defines (name, help,
// labels; the Go runtime's and the process's own left out) and compares the
// list with testdata/metrics.golden, so that no refactoring renames,
// relabels or drops a metric dashboards rely on. A metric added on purpose
// is added to the file with -update.
func TestMetricDefinitions(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.ID = "metrics-test"
	cfg.Listen, cfg.ListenAddr = 0, "127.0.0.1"
	cfg.DataDir, cfg.CacheDir, cfg.LogDir = dir, filepath.Join(dir, "cache"), filepath.Join(dir, "logs")
	rec := &recordingRegisterer{}
	s, err := New(context.Background(), cfg, Options{
		Logger:          slog.New(slog.DiscardHandler),
		ShutdownTimeout: 5 * time.Second,
		Registerer: func(r prometheus.Registerer) prometheus.Registerer {
			rec.Registerer = r
			return rec
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	seen := map[string]bool{}
	var got []string
	rec.mu.Lock()
	cs := slices.Clone(rec.cs)
	rec.mu.Unlock()
	for _, c := range cs {
		ch := make(chan *prometheus.Desc)
		go func() {
			c.Describe(ch)
			close(ch)
		}()
		for d := range ch {
			line := d.String()
			if strings.Contains(line, `fqName: "go_`) || strings.Contains(line, `fqName: "process_`) {
				continue
			}
			if !seen[line] {
				seen[line] = true
				got = append(got, line)
			}
		}
	}
	slices.Sort(got)
	text := strings.Join(got, "\n") + "\n"
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if text != string(want) {
		wl := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
		for _, l := range got {
			if !slices.Contains(wl, l) {
				t.Errorf("not in %s: %s", golden, l)
			}
		}
		for _, l := range wl {
			if !seen[l] {
				t.Errorf("missing: %s", l)
			}
		}
	}
	if len(got) < 40 {
		t.Errorf("only %d metrics recorded: the recording registerer is not used everywhere", len(got))
	}
}
