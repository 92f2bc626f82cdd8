//go:build logbench && linux

package logbench

// TestLogBench is the log collection benchmark of BENCHMARKS.md. It writes
// one file of numbered 200-byte lines first, builds the log-agent and
// agent-server binaries (with -tags logbench, which adds only the
// LOGBENCH_CPUPROFILE hook), then measures, alternately (ABAB…) so that the
// machine's load falls on both alike:
//
//   - ours: a fresh agent-server process (SQLite, embedded log store) and a
//     fresh log-agent process connected to it; the clock starts when the
//     project is configured through POST /api/logging/config (read_from
//     beginning) and stops when the server's store holds every line (its
//     count read from the segment files); after both stopped, the store's
//     count must be exactly the number of lines written.
//   - rsyslog: a separate rsyslogd (its own config, pid file and work
//     directory) with imfile on the same file and omfwd over TCP to a sink
//     in this process that marks every line number it receives; the clock
//     starts when rsyslogd is started and stops when every number arrived.
//
// For each run: MiB/s of the file, CPU seconds (utime + stime of
// /proc/<pid>/stat) per GiB of each process, peak RSS (VmHWM), and the load
// average before and after. Environment:
//
//	LOGBENCH_MB       size of the file in MiB (1024)
//	LOGBENCH_RUNS     runs per side (3)
//	LOGBENCH_BUFFER   the project's buffer, bytes per batch (1048576)
//	LOGBENCH_BATCH    the project's batch, lines per batch (100000)
//	LOGBENCH_RSYSLOG  0: ours only
//	LOGBENCH_BASE     a directory with log-agent and agent-server binaries
//	                  built before (say from main): a third side, "base",
//	                  measured in the same alternation (before/after)
//	LOGBENCH_PROFILE  a directory: one more run of ours with CPU profiles of
//	                  both processes, and their `go tool pprof -top` there
//	LOGBENCH_DIR      work directory (default: a temporary one)
//	LOGBENCH_WAIT     longest wait for one run (30m)

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	logcollect "github.com/agentfleet/agent-server/internal/logging"
	"github.com/agentfleet/agent-server/servertest"

	"github.com/agentfleet/jkframe/eventually"
)

const lineLen = 200

type benchEnv struct {
	dir, file        string
	size, lines      int64
	buffer, batch    int
	agentBin, srvBin string
	wait             time.Duration
}

type result struct {
	side         string
	secs         float64
	cpu          []float64 // per process: ours agent, server; rsyslog rsyslogd
	rss          []int64   // VmHWM in KiB, same order
	load0, load1 float64
}

func (r result) mibps(e *benchEnv) float64 { return float64(e.size) / (1 << 20) / r.secs }

func (r result) cpuPerGiB(e *benchEnv, i int) float64 {
	return r.cpu[i] / (float64(e.size) / (1 << 30))
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return def
}

func TestLogBench(t *testing.T) {
	mb := envInt("LOGBENCH_MB", 1024)
	runs := envInt("LOGBENCH_RUNS", 3)
	withRsyslog := os.Getenv("LOGBENCH_RSYSLOG") != "0"
	e := &benchEnv{buffer: envInt("LOGBENCH_BUFFER", 1<<20), batch: envInt("LOGBENCH_BATCH", 100000), wait: 30 * time.Minute}
	if d, err := time.ParseDuration(os.Getenv("LOGBENCH_WAIT")); err == nil {
		e.wait = d
	}
	e.dir = os.Getenv("LOGBENCH_DIR")
	if e.dir == "" {
		e.dir = t.TempDir()
	}
	must(t, os.MkdirAll(e.dir, 0o755))
	e.lines = int64(mb) << 20 / lineLen
	e.size = e.lines * lineLen
	rsyslogd := ""
	if withRsyslog {
		p, err := exec.LookPath("rsyslogd")
		if err != nil {
			t.Fatalf("rsyslogd not found (apt-get install -y rsyslog, or LOGBENCH_RSYSLOG=0): %v", err)
		}
		rsyslogd = p
	}

	start := time.Now()
	e.file = filepath.Join(e.dir, "app.log")
	writeFile(t, e.file, e.lines)
	t.Logf("wrote %s: %d lines of %d bytes (%d MiB) in %s", e.file, e.lines, lineLen, mb, time.Since(start).Round(time.Millisecond))
	e.agentBin = build(t, e.dir, "log-agent")
	e.srvBin = build(t, e.dir, "agent-server")

	base := os.Getenv("LOGBENCH_BASE")
	var ours, based, theirs []result
	for i := range runs {
		r := runOurs(t, e, "ours", e.agentBin, e.srvBin, i, "")
		ours = append(ours, r)
		report(t, e, r)
		if base != "" {
			r := runOurs(t, e, "base", filepath.Join(base, "log-agent"), filepath.Join(base, "agent-server"), i, "")
			based = append(based, r)
			report(t, e, r)
		}
		if withRsyslog {
			r := runRsyslog(t, e, i, rsyslogd)
			theirs = append(theirs, r)
			report(t, e, r)
		}
	}
	summary(t, e, "ours (log-agent → agent-server store)", ours, []string{"agent", "server"})
	if base != "" {
		summary(t, e, "base ("+base+")", based, []string{"agent", "server"})
	}
	if withRsyslog {
		summary(t, e, "rsyslog (imfile → omfwd tcp → sink)", theirs, []string{"rsyslogd"})
		t.Logf("ratio ours/rsyslog: MiB/s %.2f, CPU-s/GiB (agent vs rsyslogd) %.2f, (agent+server vs rsyslogd) %.2f",
			median(ours, func(r result) float64 { return r.mibps(e) })/median(theirs, func(r result) float64 { return r.mibps(e) }),
			median(ours, func(r result) float64 { return r.cpuPerGiB(e, 0) })/median(theirs, func(r result) float64 { return r.cpuPerGiB(e, 0) }),
			median(ours, func(r result) float64 { return r.cpuPerGiB(e, 0) + r.cpuPerGiB(e, 1) })/median(theirs, func(r result) float64 { return r.cpuPerGiB(e, 0) }))
	}
	if dir := os.Getenv("LOGBENCH_PROFILE"); dir != "" {
		must(t, os.MkdirAll(dir, 0o755))
		r := runOurs(t, e, "ours", e.agentBin, e.srvBin, runs, dir)
		report(t, e, r)
		for _, p := range []struct{ name, bin string }{{"agent", e.agentBin}, {"server", e.srvBin}} {
			prof := filepath.Join(dir, p.name+".pprof")
			out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=45", p.bin, prof).CombinedOutput()
			if err != nil {
				t.Errorf("pprof %s: %v\n%s", prof, err, out)
				continue
			}
			must(t, os.WriteFile(filepath.Join(dir, p.name+".top"), out, 0o644))
			t.Logf("%s CPU profile (%s):\n%s", p.name, prof, out)
		}
	}
}

// writeFile writes lines numbered lines of lineLen bytes: "%010d " and a
// pad of letters, "\n".
func writeFile(t *testing.T, path string, lines int64) {
	f, err := os.Create(path)
	must(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	line := make([]byte, lineLen)
	for i := 11; i < lineLen-1; i++ {
		line[i] = 'a' + byte((i-11)%26)
	}
	line[10], line[lineLen-1] = ' ', '\n'
	for n := range lines {
		v := n
		for i := 9; i >= 0; i-- {
			line[i] = '0' + byte(v%10)
			v /= 10
		}
		_, _ = w.Write(line)
	}
	must(t, w.Flush())
	must(t, f.Close())
}

// build compiles module with -tags logbench (which adds the
// LOGBENCH_CPUPROFILE hook) into dir.
func build(t *testing.T, dir, module string) string {
	bin, err := servertest.Build(dir, module, "logbench")
	must(t, err)
	return bin
}

// ---- ours

func runOurs(t *testing.T, e *benchEnv, side, agentBin, srvBin string, run int, profDir string) result {
	dir := filepath.Join(e.dir, fmt.Sprintf("%s-%d", side, run))
	must(t, os.RemoveAll(dir))
	must(t, os.MkdirAll(dir, 0o755))
	defer os.RemoveAll(dir)
	srv, err := servertest.Launch(servertest.Options{Binary: srvBin, Dir: dir, LogLevel: "warn",
		LogFile: filepath.Join(dir, "server.out"), Ready: time.Minute, Env: profEnv(profDir, "server"),
		Conf: map[string]string{"id": "logbench", "log_target": "file"}})
	must(t, err)
	defer stop(t, srv.Stop)
	addr, base := srv.Addr, srv.URL
	agentConf := filepath.Join(dir, "agent.conf")
	must(t, os.WriteFile(agentConf, fmt.Appendf(nil, `basic.id = bench
basic.server = %s
basic.token = %s
basic.log.target = file
basic.log.dir = %[3]s/agent-logs
basic.log.level = warn
basic.monitor.enabled = false
collect.projects =
collect.data_dir = %[3]s/agent-data
collect.sink = server
`, addr, servertest.AgentToken, dir), 0o644))
	agent := startProc(t, filepath.Join(dir, "agent.out"), profEnv(profDir, "agent"), agentBin, "--conf", agentConf, "run")
	defer stop(t, term(agent))
	eventually.Within(t, time.Minute, "log-agent online", func() bool {
		st, body := call("GET", base+"/api/agents?online=true&size=1000", "")
		return st == 200 && strings.Contains(body, `"bench"`)
	})
	st, err := logcollect.OpenStore(logcollect.StoreOptions{Dir: filepath.Join(dir, "data", "logcollect")})
	must(t, err)

	form := url.Values{"pid": {"bench"}, "type": {"logtail"}, "ids": {"bench"}, "dir": {e.file},
		"read_from": {"beginning"}, "interval": {"1"}, "buffer": {strconv.Itoa(e.buffer)}, "batch": {strconv.Itoa(e.batch)}}
	r := result{side: side, load0: loadavg()}
	cpuA0, cpuS0 := servertest.MustProcCPU(t, agent.PID()), servertest.MustProcCPU(t, srv.PID())
	t0 := time.Now()
	if code, body := call("POST", base+"/api/logging/config?"+form.Encode(), ""); code != 200 {
		t.Fatalf("config: %d %s", code, body)
	}
	var n int64
	eventually.Within(t, e.wait, fmt.Sprintf("all %d lines in the server's store", e.lines), func() bool {
		check(t, agent)
		check(t, srv)
		n, err = st.Count("bench")
		must(t, err)
		return n >= e.lines
	})
	r.secs = time.Since(t0).Seconds()
	r.load1 = loadavg()
	r.cpu = []float64{(servertest.MustProcCPU(t, agent.PID()) - cpuA0).Seconds(), (servertest.MustProcCPU(t, srv.PID()) - cpuS0).Seconds()}
	r.rss = []int64{servertest.MustProcKB(t, agent.PID(), "VmHWM"), servertest.MustProcKB(t, srv.PID(), "VmHWM")}
	if profDir != "" {
		stopProfile(t, agent, profDir, "agent")
		stopProfile(t, srv, profDir, "server")
	}
	stop(t, term(agent))
	stop(t, srv.Stop)
	if n, err = st.Count("bench"); err != nil || n != e.lines {
		t.Fatalf("the store holds %d lines (%v), want exactly %d", n, err, e.lines)
	}
	return r
}

// ---- rsyslog

func runRsyslog(t *testing.T, e *benchEnv, run int, rsyslogd string) result {
	dir := filepath.Join(e.dir, fmt.Sprintf("rsyslog-%d", run))
	must(t, os.RemoveAll(dir))
	must(t, os.MkdirAll(filepath.Join(dir, "work"), 0o755))
	defer os.RemoveAll(dir)
	sink := newSink(t, e.lines)
	defer sink.close()
	conf := filepath.Join(dir, "rsyslog.conf")
	must(t, os.WriteFile(conf, fmt.Appendf(nil, `global(workDirectory=%q)
module(load="imfile")
input(type="imfile" file=%q tag="app:" facility="local0" severity="info")
action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp")
`, filepath.Join(dir, "work"), e.file, sink.port()), 0o644))
	r := result{side: "rsyslog", load0: loadavg()}
	t0 := time.Now()
	p := startProc(t, filepath.Join(dir, "rsyslogd.out"), nil, rsyslogd, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	defer stop(t, term(p))
	eventually.Within(t, e.wait, fmt.Sprintf("all %d lines at the TCP sink", e.lines), func() bool {
		check(t, p)
		return sink.distinct.Load() >= e.lines
	})
	r.secs = time.Since(t0).Seconds()
	r.load1 = loadavg()
	r.cpu = []float64{servertest.MustProcCPU(t, p.PID()).Seconds()}
	r.rss = []int64{servertest.MustProcKB(t, p.PID(), "VmHWM")}
	stop(t, term(p))
	if bad := sink.bad.Load(); bad != 0 {
		t.Fatalf("the sink received %d lines without a line number", bad)
	}
	t.Logf("rsyslog sink: %d lines, %d bytes received (%d distinct numbers)", sink.lines.Load(), sink.bytes.Load(), sink.distinct.Load())
	return r
}

// sink is the TCP receiver of rsyslog's omfwd (newline framing): it marks
// the number at the start of the original line (the last lineLen-1 bytes
// of each received line) in a bitmap and counts the distinct ones.
type sink struct {
	ln                net.Listener
	seen              []uint32
	lines, bytes, bad atomic.Int64
	distinct          atomic.Int64
	wg                sync.WaitGroup
	mu                sync.Mutex
	conns             []net.Conn
}

func newSink(t *testing.T, lines int64) *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := &sink{ln: ln, seen: make([]uint32, lines/32+1)}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() { s.read(c, lines) })
		}
	})
	return s
}

func (s *sink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *sink) read(c net.Conn, lines int64) {
	br := bufio.NewReaderSize(c, 1<<20)
	for {
		l, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		s.lines.Add(1)
		s.bytes.Add(int64(len(l)))
		l = bytes.TrimRight(l, "\r\n")
		if len(l) < lineLen-1 {
			s.bad.Add(1)
			continue
		}
		n, err := strconv.ParseInt(string(l[len(l)-(lineLen-1):][:10]), 10, 64)
		if err != nil || n < 0 || n >= lines {
			s.bad.Add(1)
			continue
		}
		bit := uint32(1) << (n % 32)
		if atomic.OrUint32(&s.seen[n/32], bit)&bit == 0 {
			s.distinct.Add(1)
		}
	}
}

func (s *sink) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// ---- processes
//
// The server runs as a servertest.Server, the agent and rsyslogd as
// servertest.Procs: both have a PID, say whether they run and keep their
// output in a log file.

type process interface {
	PID() int
	Running() bool
	Tail(n int) string
}

// startProc starts args[0] with its output in logPath and env added to the
// environment.
func startProc(t *testing.T, logPath string, env []string, args ...string) *servertest.Proc {
	p, err := servertest.StartProc(servertest.ProcOptions{Args: args, Env: env, Log: logPath})
	must(t, err)
	return p
}

// profEnv is the environment that makes a -tags logbench binary write its
// CPU profile to profDir/<name>.pprof (LOGBENCH_CPUPROFILE); none without
// profDir.
func profEnv(profDir, name string) []string {
	if profDir == "" {
		return nil
	}
	prof := filepath.Join(profDir, name+".pprof")
	_ = os.Remove(prof + ".done")
	return []string{"LOGBENCH_CPUPROFILE=" + prof}
}

// check fails the test when the process ended on its own.
func check(t *testing.T, p process) {
	if !p.Running() {
		t.Fatalf("process %d exited:\n%s", p.PID(), p.Tail(4000))
	}
}

// stopProfile asks the process to end its CPU profile (SIGUSR1) and waits
// until it is written.
func stopProfile(t *testing.T, p process, profDir, name string) {
	prof := filepath.Join(profDir, name+".pprof")
	must(t, syscall.Kill(p.PID(), syscall.SIGUSR1))
	eventually.Within(t, time.Minute, "profile "+prof, func() bool {
		_, err := os.Stat(prof + ".done")
		return err == nil
	})
}

// term is p.Stop with SIGTERM, for stop.
func term(p *servertest.Proc) func() error {
	return func() error { return p.Stop(syscall.SIGTERM) }
}

// stop stops a process (SIGTERM, then SIGKILL after servertest.StopTimeout,
// which is an error); a stopped one is left as is.
func stop(t *testing.T, f func() error) {
	if err := f(); err != nil {
		t.Error(err)
	}
}

func loadavg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// ---- reporting

func report(t *testing.T, e *benchEnv, r result) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %7.1f MiB/s  %6.1f s  load %.1f→%.1f", r.side, r.mibps(e), r.secs, r.load0, r.load1)
	names := []string{"agent", "server"}
	if r.side == "rsyslog" {
		names = []string{"rsyslogd"}
	}
	for i, n := range names {
		fmt.Fprintf(&b, "  %s %.2f CPU-s/GiB, peak RSS %.1f MiB", n, r.cpuPerGiB(e, i), float64(r.rss[i])/1024)
	}
	t.Log(b.String())
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func summary(t *testing.T, e *benchEnv, title string, rs []result, names []string) {
	lo, hi := rs[0].load0, rs[0].load0
	for _, r := range rs {
		lo, hi = min(lo, r.load0, r.load1), max(hi, r.load0, r.load1)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %d runs, %.0f MiB, buffer %d, batch %d: median %.1f MiB/s (load %.1f–%.1f)",
		title, len(rs), float64(e.size)/(1<<20), e.buffer, e.batch, median(rs, func(r result) float64 { return r.mibps(e) }), lo, hi)
	for i, n := range names {
		fmt.Fprintf(&b, "; %s median %.2f CPU-s/GiB, peak RSS max %.1f MiB", n,
			median(rs, func(r result) float64 { return r.cpuPerGiB(e, i) }),
			float64(slices.Max(func() []int64 {
				var v []int64
				for _, r := range rs {
					v = append(v, r.rss[i])
				}
				return v
			}()))/1024)
	}
	t.Log(b.String())
}

// ---- helpers

func call(method, u, body string) (int, string) {
	req, err := http.NewRequestWithContext(context.Background(), method, u, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+servertest.OperatorToken)
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
