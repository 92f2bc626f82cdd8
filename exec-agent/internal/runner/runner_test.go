//go:build linux

package runner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"
	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collector is an Output that keeps everything and checks the order of calls.
type collector struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	chunks  int
	maxLen  int
	late    int // Chunk calls after Done
	ended   bool
	done    chan Result
	notify  chan struct{} // gets a token on every chunk (non-blocking)
	chunkFn func(p []byte) error
}

func newCollector() *collector {
	return &collector{done: make(chan Result, 1), notify: make(chan struct{}, 1)}
}

func (c *collector) Chunk(p []byte) error {
	c.mu.Lock()
	if c.ended {
		c.late++
	}
	c.buf.Write(p)
	c.chunks++
	c.maxLen = max(c.maxLen, len(p))
	fn := c.chunkFn
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	if fn != nil {
		return fn(p)
	}
	return nil
}

func (c *collector) Done(r Result) {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.done <- r
}

func (c *collector) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitFor waits until the output contains s.
func (c *collector) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(c.text(), s) {
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("output never contained %q; got %q", s, c.text())
		}
	}
}

// result waits for Done and checks that no chunk came after it.
func (c *collector) result(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.late > 0 {
			t.Errorf("%d chunks after Done", c.late)
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatalf("no Done after 30 s; output so far %q", c.text())
		return Result{}
	}
}

func newRunner(t *testing.T, opts Options) *Runner {
	t.Helper()
	if opts.KillGrace == 0 {
		opts.KillGrace = 300 * time.Millisecond
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 200 * time.Millisecond
	}
	r := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r
}

// run starts spec and waits for its end.
func run(t *testing.T, r *Runner, spec Spec) (Result, string) {
	t.Helper()
	c := newCollector()
	if _, err := r.Start(context.Background(), spec, c); err != nil {
		t.Fatalf("start %q: %v", spec.Cmd, err)
	}
	res := c.result(t)
	return res, c.text()
}

var modes = []struct {
	name string
	pipe bool
}{{"pty", false}, {"pipe", true}}

func TestExitCodes(t *testing.T) {
	r := newRunner(t, Options{})
	tests := []struct {
		cmd  string
		code int
	}{
		{"true", 0},
		{"exit 3", 3},
		{"kill -9 $$", 128 + 9},
		{"kill -15 $$", 128 + 15},
		{"no-such-command-here", 127},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.cmd, func(t *testing.T) {
				res, out := run(t, r, Spec{Cmd: tt.cmd, Pipe: m.pipe, TaskID: "T1"})
				if res.Code != tt.code || res.Reason != Exited {
					t.Fatalf("code %d (%v), want %d exited; output %q", res.Code, res.Reason, tt.code, out)
				}
				if res.Pid <= 0 || res.TaskID != "T1" || res.Start.IsZero() || res.End.Before(res.Start) {
					t.Fatalf("bad result %+v", res)
				}
			})
		}
	}
}

func TestStdoutStderr(t *testing.T) {
	r := newRunner(t, Options{})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			_, out := run(t, r, Spec{Cmd: "echo out; echo err >&2; echo out2", Pipe: m.pipe})
			want := "out\nerr\nout2\n"
			if !m.pipe {
				want = "out\r\nerr\r\nout2\r\n" // a terminal's line ends
			}
			if out != want {
				t.Fatalf("output %q, want %q", out, want)
			}
		})
	}
}

func TestManyLinesInOrder(t *testing.T) {
	r := newRunner(t, Options{})
	const n = 200000
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := newCollector()
			if _, err := r.Start(context.Background(), Spec{Cmd: "seq 1 " + strconv.Itoa(n), Pipe: m.pipe}, c); err != nil {
				t.Fatal(err)
			}
			res := c.result(t)
			if res.Code != 0 {
				t.Fatalf("code %d", res.Code)
			}
			sep := "\n"
			if !m.pipe {
				sep = "\r\n"
			}
			lines := strings.Split(strings.TrimSuffix(c.text(), sep), sep)
			if len(lines) != n {
				t.Fatalf("%d lines, want %d", len(lines), n)
			}
			for i, l := range lines {
				if l != strconv.Itoa(i+1) {
					t.Fatalf("line %d is %q", i+1, l)
				}
			}
			if c.chunks < 2 || c.maxLen > ChunkSize {
				t.Fatalf("%d chunks, largest %d bytes: want streaming in chunks ≤ %d", c.chunks, c.maxLen, ChunkSize)
			}
		})
	}
}

// Back-pressure: a slow Output slows the command down instead of buffering.
func TestSlowOutputLosesNothing(t *testing.T) {
	r := newRunner(t, Options{})
	c := newCollector()
	c.chunkFn = func([]byte) error { time.Sleep(time.Millisecond); return nil }
	if _, err := r.Start(context.Background(), Spec{Cmd: "seq 1 50000", Pipe: true}, c); err != nil {
		t.Fatal(err)
	}
	c.result(t)
	lines := strings.Split(strings.TrimSpace(c.text()), "\n")
	if len(lines) != 50000 || lines[49999] != "50000" {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestOutputError(t *testing.T) {
	r := newRunner(t, Options{})
	c := newCollector()
	c.chunkFn = func([]byte) error { return errors.New("link down") }
	if _, err := r.Start(context.Background(), Spec{Cmd: "seq 1 100000; exit 4", Pipe: true}, c); err != nil {
		t.Fatal(err)
	}
	res := c.result(t)
	if res.Code != 4 || res.Err == nil || res.Err.Error() != "output: link down" {
		t.Fatalf("code %d err %v: want 4 and the output error", res.Code, res.Err)
	}
	if c.chunks != 1 {
		t.Fatalf("%d Chunk calls after an error, want 1", c.chunks)
	}
}

// treeMark tags a test's processes so the test can look for survivors itself
// (independently of the runner's own marker).
func treeMark(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "RUNNER_TEST_MARK=" + hex.EncodeToString(b[:])
}

// survivors lists live processes whose environment holds mark.
func survivors(t *testing.T, mark string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, []byte(mark+"\x00")) {
			continue
		}
		if st, ok := readStat("/proc", pid); ok && !st.zombie {
			cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			live = append(live, fmt.Sprintf("%d %q", pid, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		}
	}
	return live
}

func killSurvivors(t *testing.T, mark string) {
	for _, s := range survivors(t, mark) {
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		_ = syscallKill(pid)
	}
}

// waitNoSurvivors polls until no process with mark is alive.
func waitNoSurvivors(t *testing.T, mark string, within time.Duration) {
	t.Helper()
	p := eventually.Poll{Timeout: within, OnTimeout: func() { killSurvivors(t, mark) }}
	p.NoError(t, "no survivors of "+mark, func() error {
		if s := survivors(t, mark); len(s) > 0 {
			return fmt.Errorf("processes survive: %v", s)
		}
		return nil
	})
}

// tree starts background sleeps, a grandchild in its own session, and a
// grandchild in its own session whose parent has exited (reparented to init).
const tree = `sleep 300 & sleep 300 & setsid sleep 300 & sh -c 'setsid sleep 300 & exit 0'; echo started; wait`

func TestTimeoutKillsTree(t *testing.T) {
	r := newRunner(t, Options{})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			mark := treeMark(t)
			t.Cleanup(func() { killSurvivors(t, mark) })
			start := time.Now()
			res, out := run(t, r, Spec{Cmd: tree, Env: []string{mark}, Timeout: time.Second, Pipe: m.pipe})
			if res.Reason != TimedOut || res.Code != 128+15 {
				t.Fatalf("reason %v code %d, want timed out with 143; output %q", res.Reason, res.Code, out)
			}
			if !strings.Contains(out, "started") {
				t.Fatalf("output %q", out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v", d)
			}
			if s := survivors(t, mark); len(s) > 0 {
				t.Fatalf("processes survive the timeout: %v", s)
			}
		})
	}
}

// A tree that ignores SIGTERM is SIGKILLed after the grace.
func TestKillEscalates(t *testing.T) {
	r := newRunner(t, Options{KillGrace: 200 * time.Millisecond})
	mark := treeMark(t)
	t.Cleanup(func() { killSurvivors(t, mark) })
	c := newCollector()
	task, err := r.Start(context.Background(), Spec{Cmd: `trap '' TERM; sleep 300 & setsid sh -c 'trap "" TERM; sleep 300' & echo started; wait`, Env: []string{mark}}, c)
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "started")
	task.Kill()
	res := c.result(t)
	if res.Reason != Killed || res.Code != 128+9 {
		t.Fatalf("reason %v code %d, want killed with 137", res.Reason, res.Code)
	}
	if s := survivors(t, mark); len(s) > 0 {
		t.Fatalf("processes survive: %v", s)
	}
}

func TestKillByPidAndTaskID(t *testing.T) {
	r := newRunner(t, Options{})
	for _, byID := range []bool{false, true} {
		t.Run(fmt.Sprintf("byID=%v", byID), func(t *testing.T) {
			mark := treeMark(t)
			t.Cleanup(func() { killSurvivors(t, mark) })
			c := newCollector()
			task, err := r.Start(context.Background(), Spec{TaskID: "task-7", Cmd: tree, Env: []string{mark}}, c)
			if err != nil {
				t.Fatal(err)
			}
			c.waitFor(t, "started")
			list := r.List()
			if len(list) != 1 || list[0].Pid != task.Pid() || list[0].TaskID != "task-7" || list[0].Begin.IsZero() {
				t.Fatalf("List = %+v", list)
			}
			if _, err := r.Kill(task.Pid(), "other-task"); !errors.Is(err, ErrNoTask) {
				t.Fatalf("kill with a mismatched task id: %v, want ErrNoTask", err)
			}
			var info Info
			if byID {
				info, err = r.Kill(0, "task-7")
			} else {
				info, err = r.Kill(task.Pid(), "")
			}
			if err != nil || info.Pid != task.Pid() || info.TaskID != "task-7" {
				t.Fatalf("kill: %+v, %v", info, err)
			}
			res := c.result(t)
			if res.Reason != Killed || res.Code != 143 {
				t.Fatalf("reason %v code %d", res.Reason, res.Code)
			}
			if !reflect.DeepEqual(res, task.Wait()) {
				t.Fatal("Wait and Done disagree")
			}
			waitNoSurvivors(t, mark, 0)
			if _, err := r.Kill(task.Pid(), ""); err == nil || err.Error() != fmt.Sprintf(`kill pid %d task "": no such task`, task.Pid()) {
				t.Fatalf("kill after the end: %v", err)
			}
			if n := len(r.List()); n != 0 {
				t.Fatalf("%d tasks listed after the end", n)
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	r := newRunner(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newCollector()
	if _, err := r.Start(ctx, Spec{Cmd: "echo started; sleep 300", Pipe: true}, c); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "started")
	cancel()
	if res := c.result(t); res.Reason != Canceled || res.Code != 143 {
		t.Fatalf("reason %v code %d", res.Reason, res.Code)
	}
}

// A background process that keeps the terminal open after the main process
// exited does not hold up the end of the task.
func TestDetachedChildDoesNotHang(t *testing.T) {
	r := newRunner(t, Options{})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			mark := treeMark(t)
			t.Cleanup(func() { killSurvivors(t, mark) })
			start := time.Now()
			res, out := run(t, r, Spec{Cmd: "setsid sleep 300 & echo bye", Env: []string{mark}, Pipe: m.pipe})
			if res.Code != 0 || res.Reason != Exited || !strings.Contains(out, "bye") {
				t.Fatalf("code %d reason %v output %q", res.Code, res.Reason, out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestEnvAndWorkdir(t *testing.T) {
	r := newRunner(t, Options{})
	dir := t.TempDir()
	_, out := run(t, r, Spec{Cmd: `printf '%s|%s|' "$FOO" "$EMPTY"; pwd`, Env: []string{"FOO=bar baz=1", "EMPTY="}, WorkDir: dir, Pipe: true})
	if want := "bar baz=1||" + dir + "\n"; out != want {
		t.Fatalf("output %q, want %q", out, want)
	}
	c := newCollector()
	_, err := r.Start(context.Background(), Spec{Cmd: "true", WorkDir: filepath.Join(dir, "missing")}, c)
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("missing workdir: %v", err)
	}
}

func TestArgsQuoting(t *testing.T) {
	r := newRunner(t, Options{})
	args := []string{"a b", "it's", `"q"`, "$HOME", "x;y", "", "*", "`id`", "$(id)", "back\\slash", "new\nline", "-n", "ünï"}
	var want strings.Builder
	for _, a := range args {
		want.WriteString("[" + a + "]")
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// Cmd names a program; Args arrive as separate words, unchanged.
			_, out := run(t, r, Spec{Cmd: "printf '[%s]'", Args: args, Pipe: m.pipe})
			w := want.String()
			if !m.pipe {
				w = strings.ReplaceAll(w, "\n", "\r\n")
			}
			if out != w {
				t.Fatalf("output %q, want %q", out, w)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"abc", "abc"}, {"", "''"}, {"a b", "'a b'"}, {"it's", `'it'\''s'`}, {"/usr/bin/x-y_z.1", "/usr/bin/x-y_z.1"}, {"$x", "'$x'"},
	} {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDeferRM(t *testing.T) {
	r := newRunner(t, Options{})
	dir := t.TempDir()
	f := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(f, []byte("echo from script\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, out := run(t, r, Spec{Cmd: "sh " + f, DeferRM: f, Pipe: true})
	if res.Err != nil || out != "from script\n" {
		t.Fatalf("err %v output %q", res.Err, out)
	}
	if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("drm file still there: %v", err)
	}
	// Also when the start fails.
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(context.Background(), Spec{Cmd: "true", WorkDir: filepath.Join(dir, "missing"), DeferRM: f}, newCollector()); err == nil {
		t.Fatal("start in a missing workdir succeeded")
	}
	if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("drm file still there after a failed start: %v", err)
	}
	// A removal failure is reported, the result stands.
	sub := filepath.Join(dir, "nonempty")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	res, _ = run(t, r, Spec{Cmd: "exit 2", DeferRM: sub, Pipe: true})
	if res.Code != 2 || res.Err == nil || !strings.HasPrefix(res.Err.Error(), "drm: remove "+sub) {
		t.Fatalf("code %d err %v", res.Code, res.Err)
	}
}

func TestBusy(t *testing.T) {
	r := newRunner(t, Options{MaxTasks: 2})
	var tasks []*Task
	for range 2 {
		task, err := r.Start(context.Background(), Spec{Cmd: "sleep 300", Pipe: true}, newCollector())
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task)
	}
	_, err := r.Start(context.Background(), Spec{Cmd: "true"}, newCollector())
	if !errors.Is(err, ErrBusy) || err.Error() != "busy: 2 tasks running, limit 2" {
		t.Fatalf("third start: %v", err)
	}
	if n := r.Running(); n != 2 {
		t.Fatalf("Running = %d", n)
	}
	tasks[0].Kill()
	tasks[0].Wait()
	c := newCollector()
	if _, err := r.Start(context.Background(), Spec{Cmd: "echo ok", Pipe: true}, c); err != nil {
		t.Fatalf("start after a slot freed: %v", err)
	}
	c.result(t)
	tasks[1].Kill()
	tasks[1].Wait()
}

func TestClose(t *testing.T) {
	r := New(Options{KillGrace: 200 * time.Millisecond})
	c := newCollector()
	if _, err := r.Start(context.Background(), Spec{Cmd: "echo started; sleep 300"}, c); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "started")
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := c.result(t); res.Reason != Killed {
		t.Fatalf("reason %v", res.Reason)
	}
	if _, err := r.Start(context.Background(), Spec{Cmd: "true"}, newCollector()); !errors.Is(err, ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
}

func TestBadSpec(t *testing.T) {
	r := newRunner(t, Options{})
	tests := []struct {
		spec Spec
		err  string
	}{
		{Spec{Cmd: "id", Auth: "doas"}, `invalid exec request: auth "doas": want "", "su" or "sudo"`},
		{Spec{Cmd: "id", Auth: "su", User: "-c"}, `invalid exec request: user "-c": starts with '-'`},
		{Spec{Cmd: "id", Auth: "sudo", User: "a b"}, `invalid exec request: user "a b": contains a space, control character, '/' or ':'`},
		{Spec{Cmd: "id", Env: []string{"A=1", "NOEQ"}}, `invalid exec request: env[1] "NOEQ": want K=V`},
		{Spec{Cmd: "id", Env: []string{"=x"}}, `invalid exec request: env[0] "=x": want K=V`},
		{Spec{Cmd: "id", Auth: "su", Pass: "plain"}, `invalid exec request: pass: bad password encoding: want a $0$ or $1$ prefix`},
		{Spec{Cmd: "id", Auth: "su", Pass: "$1$AAAA"}, `invalid exec request: pass: password uses the $1$ form but no v1 key is configured`},
		{Spec{Cmd: "id", Auth: "su", Pass: "$0$a\nb"}, `invalid exec request: pass: longer than 1024 bytes or contains a line break or NUL`},
	}
	for _, tt := range tests {
		_, err := r.Start(context.Background(), tt.spec, newCollector())
		if err == nil || err.Error() != tt.err {
			t.Errorf("%+v: error %v, want %s", tt.spec, err, tt.err)
		}
		if !errors.Is(err, ErrSpec) {
			t.Errorf("%+v: %v is not ErrSpec", tt.spec, err)
		}
		if err := r.Check(tt.spec); err == nil || err.Error() != tt.err {
			t.Errorf("Check(%+v): error %v, want %s", tt.spec, err, tt.err)
		}
	}
	if err := r.Check(Spec{Cmd: "id", Auth: "sudo", User: "nobody", Pass: "$0$pw"}); err != nil {
		t.Errorf("Check of a good spec: %v", err)
	}
	_, err := r.Start(context.Background(), Spec{Cmd: "id", Auth: "su", Pass: "$1$AAAA"}, newCollector())
	if !errors.Is(err, protocol.ErrNoPassKey) {
		t.Errorf("$1$ without a key: %v is not protocol.ErrNoPassKey", err)
	}
}

func TestSuRealBinary(t *testing.T) {
	if _, err := exec.LookPath("su"); err != nil {
		t.Skip("su is not installed")
	}
	if os.Getuid() != 0 {
		t.Skip("su to another user without a password needs root")
	}
	r := newRunner(t, Options{})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// root needs no password: it must never be typed anywhere.
			res, out := run(t, r, Spec{Cmd: "id -un; echo \"$0\"", Auth: AuthSu, User: "nobody", Pass: "$0$never-typed-pw", Pipe: m.pipe})
			if res.Code != 0 || !strings.HasPrefix(out, "nobody") || strings.Contains(out, "never-typed-pw") {
				t.Fatalf("code %d output %q", res.Code, out)
			}
		})
	}
	res, out := run(t, r, Spec{Cmd: "id", Auth: AuthSu, User: "no-such-user-xyz", Pipe: true})
	if res.Code == 0 {
		t.Fatalf("su to a missing user: code 0, output %q", out)
	}
}

// fakeSudo behaves like `sudo -S -u USER -- cmd…` as far as the password
// goes: prompt, read the password with the terminal's echo off (as sudo
// does), up to 3 tries.
const fakeSudo = `#!/bin/sh
[ "$1" = -S ] && [ "$2" = -u ] && [ "$4" = -- ] || { echo "bad usage: $*"; exit 64; }
user=$3; shift 4
for try in 1 2 3; do
	printf '[sudo] password for %s: ' "$user" >&2
	stty -echo 2>/dev/null
	IFS= read -r pw || { stty echo 2>/dev/null; echo "sudo: no password given" >&2; exit 1; }
	stty echo 2>/dev/null
	echo >&2
	if [ "$pw" = "$SUDO_TEST_PASS" ]; then exec "$@"; fi
	echo "Sorry, try again." >&2
done
exit 1
`

func TestSudoPassword(t *testing.T) {
	dir := t.TempDir()
	sudo := filepath.Join(dir, "sudo")
	if err := os.WriteFile(sudo, []byte(fakeSudo), 0o755); err != nil {
		t.Fatal(err)
	}
	const pw = "pa ss'wo$rd-7Q"
	key := &protocol.PassKey{}
	copy(key.Key[:], "0123456789abcdef0123456789abcdef")
	v1, err := protocol.EncodePassV1(pw, key)
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, Options{Sudo: sudo, PassKey: key})
	for _, m := range modes {
		for _, pass := range []string{protocol.EncodePass(pw), v1} {
			t.Run(m.name+"/"+pass[:3], func(t *testing.T) {
				res, out := run(t, r, Spec{Cmd: "echo ran as", Args: []string{"x"}, Auth: AuthSudo, User: "alice", Pass: pass, Env: []string{"SUDO_TEST_PASS=" + pw}, Pipe: m.pipe})
				if res.Code != 0 || !strings.Contains(out, "[sudo] password for alice:") || !strings.Contains(out, "ran as x") {
					t.Fatalf("code %d output %q", res.Code, out)
				}
				if strings.Contains(out, pw) || strings.Contains(out, "pa ss") {
					t.Fatalf("the password is in the output: %q", out)
				}
			})
		}
		t.Run(m.name+"/wrong password", func(t *testing.T) {
			start := time.Now()
			res, out := run(t, r, Spec{Cmd: "echo ran", Auth: AuthSudo, User: "alice", Pass: "$0$wrong-pw-9", Env: []string{"SUDO_TEST_PASS=" + pw}, Pipe: m.pipe, Timeout: 20 * time.Second})
			if res.Code != 1 || res.Reason != Exited || strings.Contains(out, "ran") || strings.Contains(out, "wrong-pw-9") {
				t.Fatalf("code %d reason %v output %q", res.Code, res.Reason, out)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("a wrong password took %v to fail", d)
			}
		})
	}
}

// BenchmarkRunTrue is the agent side of an exec round trip: start `true`,
// read its (empty) output, reap it, report.
func BenchmarkRunTrue(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			r := New(Options{})
			defer r.Close(context.Background())
			for b.Loop() {
				c := newCollector()
				if _, err := r.Start(context.Background(), Spec{Cmd: "true", Pipe: m.pipe}, c); err != nil {
					b.Fatal(err)
				}
				<-c.done
			}
		})
	}
}
