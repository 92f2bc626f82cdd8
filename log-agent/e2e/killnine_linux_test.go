package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/log-agent/internal/sink"
)

// TestKillNineZeroLoss runs the real log-agent binary with the file sink
// while numbered lines are written to a file that is rotated both ways
// logrotate does (rename+create, copytruncate), kills it with SIGKILL
// several times and restarts it, and checks that the sink holds every line
// exactly once, in order within each source (count and SHA-256 of the
// lines in number order).
//
// LOGAGENT_E2E_MB sets the volume (default 16 MB; the 1 GB run is
// LOGAGENT_E2E_MB=1024, see docs/logging.md).
func TestKillNineZeroLoss(t *testing.T) {
	totalMB := 16
	if v := os.Getenv("LOGAGENT_E2E_MB"); v != "" {
		totalMB, _ = strconv.Atoi(v)
	}
	const (
		lineLen    = 100 // bytes with the newline
		rotateSize = 2 << 20
		keep       = 200 // rotated files kept: the agent may be down a while
		kills      = 5
	)
	total := totalMB << 20 / lineLen
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	out := filepath.Join(dir, "out")
	must(t, os.MkdirAll(logs, 0o755))
	path := filepath.Join(logs, "app.log")
	projects := fmt.Sprintf(`[{"name":"k9","type":"logtail","paths":[%q],"read_from":"beginning","interval":1,"buffer":65536}]`, path+"*")
	must(t, os.WriteFile(filepath.Join(dir, "projects.json"), []byte(projects), 0o644))
	conf := fmt.Sprintf(`basic.id = k9
basic.server = 127.0.0.1:1
basic.log.target = stdout
basic.log.level = info
basic.monitor.enabled = false
collect.projects = %s
collect.data_dir = %s
collect.sink = file:%s
collect.spool_size = 64M
collect.poll = 5ms
collect.scan = 50ms
collect.rotate_wait = 200ms
`, filepath.Join(dir, "projects.json"), filepath.Join(dir, "data"), out)
	must(t, os.WriteFile(filepath.Join(dir, "agent.conf"), []byte(conf), 0o644))

	var agentLog bytes.Buffer
	var cmd *exec.Cmd
	startAgent := func() {
		cmd = exec.Command(binary, "--conf", filepath.Join(dir, "agent.conf"), "run")
		cmd.Stdout, cmd.Stderr = &agentLog, &agentLog
		must(t, cmd.Start())
	}
	kill := func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	startAgent()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("agent output (tail):\n%s", tailOf(agentLog.String(), 4000))
		}
	}()

	rd := &sinkReader{dir: filepath.Join(out, "k9"), offs: map[string]int64{}}
	w := &lineWriter{path: path, keep: keep}
	w.open(t)
	killEvery := total / (kills + 1)
	nextKill := killEvery
	rotations := 0
	for w.n < total {
		w.write(t, min(2000, total-w.n))
		if w.size >= rotateSize {
			// Stay within the rotated files logrotate keeps.
			waitFor(t, "the agent within the kept files", func() bool {
				return rd.count(t) > w.n-(keep-10)*(rotateSize/lineLen)
			})
			if rotations%2 == 0 {
				w.rotateRename(t)
			} else {
				w.rotateCopyTruncate(t)
			}
			rotations++
		}
		if w.n >= nextKill && nextKill < kills*killEvery+1 {
			kill()
			startAgent()
			nextKill += killEvery
		}
	}
	w.f.Close()
	waitFor(t, fmt.Sprintf("all %d lines in the sink", total), func() bool { return rd.count(t) >= total })
	kill()

	// Verify: every line once, in order per source, hash over number order.
	seen := make([]int32, total)
	dups := 0
	for id, lines := range rd.all(t) {
		prev := -1
		for _, l := range lines {
			i, ok := parseLine(l)
			if !ok || i >= total || l != lineText(i) {
				t.Fatalf("source %s: bad line %q", id, l)
			}
			if i <= prev {
				t.Fatalf("source %s: line %d after %d", id, i, prev)
			}
			prev = i
			seen[i]++
			if seen[i] > 1 {
				dups++
			}
		}
	}
	var missing []int
	for i, c := range seen {
		if c == 0 {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 || dups > 0 {
		t.Fatalf("%d lines missing (first %v), %d duplicated", len(missing), missing[:min(10, len(missing))], dups)
	}
	h := sha256.New()
	for i := range total {
		io.WriteString(h, lineText(i))
	}
	want := fmt.Sprintf("%x", h.Sum(nil))
	got := rd.hash(t, total)
	if got != want {
		t.Fatalf("hash of the sink's lines %s, of the lines written %s", got, want)
	}
	t.Logf("%d lines (%d MB), %d rotations, %d kill -9, sha256 %s…", total, totalMB, rotations, kills, want[:16])
}

func lineText(i int) string { return fmt.Sprintf("L%09d %s", i, strings.Repeat("x", 89)) }

func parseLine(l string) (int, bool) {
	if len(l) < 10 || l[0] != 'L' {
		return 0, false
	}
	i, err := strconv.Atoi(l[1:10])
	return i, err == nil
}

type lineWriter struct {
	path string
	keep int
	f    *os.File
	n    int
	size int64
}

func (w *lineWriter) open(t *testing.T) {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	must(t, err)
	w.f, w.size = f, 0
}

func (w *lineWriter) write(t *testing.T, k int) {
	var b bytes.Buffer
	for range k {
		b.WriteString(lineText(w.n))
		b.WriteByte('\n')
		w.n++
	}
	_, err := w.f.Write(b.Bytes())
	must(t, err)
	w.size += int64(b.Len())
}

func (w *lineWriter) shift() {
	os.Remove(fmt.Sprintf("%s.%d", w.path, w.keep))
	for i := w.keep - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
	}
}

func (w *lineWriter) rotateRename(t *testing.T) {
	w.shift()
	must(t, os.Rename(w.path, w.path+".1"))
	w.write(t, 5) // to the renamed file, until the writer reopens
	w.f.Close()
	w.open(t)
}

func (w *lineWriter) rotateCopyTruncate(t *testing.T) {
	w.shift()
	src, err := os.Open(w.path)
	must(t, err)
	dst, err := os.Create(w.path + ".1")
	must(t, err)
	_, err = io.Copy(dst, src)
	must(t, err)
	src.Close()
	dst.Close()
	must(t, os.Truncate(w.path, 0))
	w.size = 0
}

// sinkReader reads the file sink's output incrementally.
type sinkReader struct {
	dir  string
	offs map[string]int64
	n    int
}

func (r *sinkReader) files() []string {
	ents, _ := os.ReadDir(r.dir)
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func (r *sinkReader) count(t *testing.T) int {
	for _, name := range r.files() {
		f, err := os.Open(filepath.Join(r.dir, name))
		if err != nil {
			continue
		}
		_, _ = f.Seek(r.offs[name], io.SeekStart)
		n, err := sink.ReadEntries(f, func(sink.Entry) error { r.n++; return nil })
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		r.offs[name] += n
	}
	return r.n
}

func (r *sinkReader) all(t *testing.T) map[string][]string {
	out := map[string][]string{}
	for _, name := range r.files() {
		f, err := os.Open(filepath.Join(r.dir, name))
		must(t, err)
		_, err = sink.ReadEntries(f, func(e sink.Entry) error {
			out[name] = append(out[name], string(e.Data))
			return nil
		})
		f.Close()
		must(t, err)
	}
	return out
}

func (r *sinkReader) hash(t *testing.T, total int) string {
	byNum := make([]string, total)
	for _, lines := range r.all(t) {
		for _, l := range lines {
			if i, ok := parseLine(l); ok && i < total {
				byNum[i] = l
			}
		}
	}
	h := sha256.New()
	for _, l := range byNum {
		io.WriteString(h, l)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
