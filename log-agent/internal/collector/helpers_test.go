package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent/logship"

	"github.com/agentfleet/log-agent/internal/batch"
	"github.com/agentfleet/log-agent/internal/project"
	"github.com/agentfleet/log-agent/internal/tail"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recSink records the records it acknowledges, by source id, and can be
// told to refuse batches (a sink that is away).
type recSink struct {
	mu      sync.Mutex
	recs    map[string][]logship.Record // by source id, in arrival order
	names   map[string]string
	batches int
	lines   int
	down    bool
	calls   int
}

func newRecSink() *recSink {
	return &recSink{recs: map[string][]logship.Record{}, names: map[string]string{}}
}

var errDown = errors.New("sink away")

func (s *recSink) Ship(_ context.Context, bs []*batch.Batch) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.down {
		return 0, errDown
	}
	for _, b := range bs {
		recs, err := b.Records(0)
		if err != nil {
			return 0, err
		}
		for _, r := range recs {
			src := b.Sources[r.Source]
			r.Data = append([]byte(nil), r.Data...)
			s.recs[src.ID] = append(s.recs[src.ID], r)
			s.names[src.ID] = src.Name
		}
		s.batches++
		s.lines += len(recs)
	}
	return len(bs), nil
}

func (s *recSink) setDown(d bool) {
	s.mu.Lock()
	s.down = d
	s.mu.Unlock()
}

func (s *recSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines
}

// lines returns every record's text, by source, and checks that offsets
// grow within each source.
func (s *recSink) byName(t *testing.T) map[string][]string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for id, rs := range s.recs {
		for i, r := range rs {
			if i > 0 && r.Offset <= rs[i-1].Offset {
				t.Errorf("source %s (%s): offset %d after %d", id, s.names[id], r.Offset, rs[i-1].Offset)
			}
			key := s.names[id] + " (" + id + ")"
			out[key] = append(out[key], string(r.Data))
		}
	}
	return out
}

func (s *recSink) all() map[string][]logship.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]logship.Record{}
	for id, rs := range s.recs {
		out[id] = append([]logship.Record(nil), rs...)
	}
	return out
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("LOGAGENT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fastTail polls often so tests finish quickly; nothing depends on it.
func fastTail() tail.Options {
	return tail.Options{Poll: 2 * time.Millisecond, Scan: 20 * time.Millisecond, RotateWait: 40 * time.Millisecond,
		CloseIdle: time.Hour}
}

// running is a collector running in a goroutine.
type running struct {
	c      *Collector
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, p *project.Project, dir string, sink Sink, mod func(*Options)) *running {
	t.Helper()
	opts := Options{Project: p, Dir: dir, Sink: sink, Log: testLogger(t), Tail: fastTail(),
		CheckpointEvery: 10 * time.Millisecond,
		Backoff:         &backoff.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("collector: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("collector did not stop")
	}
}

func mustProject(t testing.TB, js string) *project.Project {
	t.Helper()
	p, err := project.Decode([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writer writes numbered lines to a log file and rotates it the ways
// logrotate does.
type writer struct {
	t     *testing.T
	path  string
	f     *os.File
	n     int
	keep  int // rotated files kept
	pad   string
	bytes int64 // written to the current file
}

func newWriter(t *testing.T, path string, keep int) *writer {
	w := &writer{t: t, path: path, keep: keep, pad: fmt.Sprintf("%0100d", 0)}
	w.open()
	return w
}

func (w *writer) open() {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	w.f = f
	w.bytes = 0
}

func (w *writer) line(i int) string { return fmt.Sprintf("line %09d %s", i, w.pad) }

func (w *writer) write(k int) {
	buf := make([]byte, 0, k*128)
	for range k {
		buf = append(buf, w.line(w.n)...)
		buf = append(buf, '\n')
		w.n++
	}
	if _, err := w.f.Write(buf); err != nil {
		w.t.Fatal(err)
	}
	w.bytes += int64(len(buf))
}

// shift moves path.i to path.i+1 for i = keep-1 … 1, deleting path.keep.
func (w *writer) shift() {
	os.Remove(fmt.Sprintf("%s.%d", w.path, w.keep))
	for i := w.keep - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
	}
}

// rotateRename is logrotate's default (create): rename, create a new
// file; the writer reopens after a few more lines to the renamed file.
func (w *writer) rotateRename() {
	w.shift()
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		w.t.Fatal(err)
	}
	w.write(3) // still to the old file, as a daemon does until it reopens
	w.f.Close()
	w.open()
}

// rotateCopyTruncate is logrotate's copytruncate: copy, then truncate the
// file the writer keeps open (O_APPEND writes go on at the new end).
func (w *writer) rotateCopyTruncate() {
	w.shift()
	src, err := os.Open(w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	dst, err := os.Create(w.path + ".1")
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		w.t.Fatal(err)
	}
	src.Close()
	dst.Close()
	if err := os.Truncate(w.path, 0); err != nil {
		w.t.Fatal(err)
	}
	w.bytes = 0
}

func (w *writer) close() { w.f.Close() }

// checkAll verifies that the sink holds every line 0 … n-1 exactly once,
// in order within each source.
func checkAll(t *testing.T, s *recSink, w *writer, n int) {
	t.Helper()
	seen := make([]int, n)
	for name, lines := range s.byName(t) {
		prev := -1
		for _, l := range lines {
			var i int
			if _, err := fmt.Sscanf(l, "line %d ", &i); err != nil || i < 0 || i >= n {
				t.Fatalf("%s: bad line %q", name, l)
			}
			if l != w.line(i) {
				t.Fatalf("%s: line %d damaged: %q", name, i, l)
			}
			if i <= prev {
				t.Errorf("%s: line %d after %d", name, i, prev)
			}
			prev = i
			seen[i]++
		}
	}
	var missing, dup []string
	for i, c := range seen {
		switch {
		case c == 0 && len(missing) < 10:
			missing = append(missing, strconv.Itoa(i))
		case c > 1 && len(dup) < 10:
			dup = append(dup, strconv.Itoa(i))
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("missing lines %v, duplicated lines %v (of %d)", missing, dup, n)
	}
}

func listDir(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	sort.Strings(out)
	return out
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// checkOK is checkAll without failing.
func checkOK(s *recSink, w *writer, n int) bool {
	seen := make([]int, n)
	for _, rs := range s.all() {
		for _, r := range rs {
			var i int
			if _, err := fmt.Sscanf(string(r.Data), "line %d ", &i); err != nil || i < 0 || i >= n {
				return false
			}
			seen[i]++
		}
	}
	for _, c := range seen {
		if c != 1 {
			return false
		}
	}
	return true
}
