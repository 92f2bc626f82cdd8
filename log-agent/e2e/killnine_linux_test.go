package e2e

import (
	"bytes"
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

	"github.com/agentfleet/jkframe/linetest"
	"github.com/agentfleet/log-agent/internal/sink"

	"github.com/agentfleet/jkframe/eventually"
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
	w := &linetest.Writer{Path: path, Keep: keep}
	w.Open(t)
	killEvery := total / (kills + 1)
	nextKill := killEvery
	rotations := 0
	for w.N < total {
		w.Write(t, min(2000, total-w.N))
		if w.Size >= rotateSize {
			// Stay within the rotated files logrotate keeps.
			eventually.Within(t, 5*time.Minute, "the agent within the kept files", func() bool {
				return rd.count(t) > w.N-(keep-10)*(rotateSize/lineLen)
			})
			if rotations%2 == 0 {
				w.RotateRename(t)
			} else {
				w.RotateCopyTruncate(t)
			}
			rotations++
		}
		if w.N >= nextKill && nextKill < kills*killEvery+1 {
			kill()
			startAgent()
			nextKill += killEvery
		}
	}
	w.Close()
	eventually.Within(t, 5*time.Minute, fmt.Sprintf("all %d lines in the sink", total), func() bool { return rd.count(t) >= total })
	kill()

	// Verify: every line once, in order per source, hash over number order.
	sum := linetest.Check(t, total, rd.all(t))
	t.Logf("%d lines (%d MB), %d rotations, %d kill -9, sha256 %x…", total, totalMB, rotations, kills, sum[:8])
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
