package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/windows"
)

// helperEnv makes the test binary act as a command of a task (see TestMain):
//
//	sleep   prints "sleeping" and waits to be killed
//	tree    starts a "sleep" child on the same output, prints "child <pid>", waits to be killed
//	orphan  starts a "sleep" child on the same output, prints "child <pid>", exits 0
const helperEnv = "RUNNER_WINDOWS_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	goleak.VerifyTestMain(m)
}

func helper(mode string) int {
	if mode == "sleep" {
		fmt.Println("sleeping")
		time.Sleep(time.Hour) // a process to be killed; the test never waits for this
		return 0
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	child := exec.Command(exe)
	child.Env = append(os.Environ(), helperEnv+"=sleep")
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	if err := child.Start(); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("child %d\n", child.Process.Pid)
	if mode == "orphan" {
		return 0
	}
	time.Sleep(time.Hour)
	return 0
}

// output is an Output that keeps what it gets.
type output struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
	done   chan Result
}

func newOutput() *output {
	return &output{notify: make(chan struct{}, 1), done: make(chan Result, 1)}
}

func (o *output) Chunk(p []byte) error {
	o.mu.Lock()
	o.buf.Write(p)
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return nil
}

func (o *output) Done(r Result) { o.done <- r }

func (o *output) text() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output contains s and returns it.
func (o *output) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(o.text(), s) {
		select {
		case <-o.notify:
		case <-deadline:
			t.Fatalf("output never contained %q; got %q", s, o.text())
		}
	}
	return o.text()
}

func (o *output) result(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-o.done:
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("no Done after 60 s; output %q", o.text())
		return Result{}
	}
}

func winRunner(t *testing.T) *Runner {
	t.Helper()
	r := New(Options{KillGrace: 100 * time.Millisecond, DrainTimeout: 100 * time.Millisecond})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r
}

func run(t *testing.T, r *Runner, spec Spec) (string, Result) {
	t.Helper()
	out := newOutput()
	if _, err := r.Start(context.Background(), spec, out); err != nil {
		t.Fatal(err)
	}
	res := out.result(t)
	return out.text(), res
}

// The command line goes to cmd.exe as built: its output, exit code,
// environment, working directory and quoted arguments.
func TestCmdExe(t *testing.T) {
	r := winRunner(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		spec Spec
		want string // output with CRLF made LF, trimmed
		code int
	}{
		{"echo", Spec{Cmd: "echo hello"}, "hello", 0},
		{"exit code", Spec{Cmd: "exit /B 3"}, "", 3},
		{"env", Spec{Cmd: "echo %AF_WINE_X%", Env: []string{"AF_WINE_X=forty two"}}, "forty two", 0},
		{"workdir", Spec{Cmd: "cd", WorkDir: dir}, dir, 0},
		{"quoted args", Spec{Cmd: "echo", Args: []string{"a b", "c"}}, `"a b" c`, 0},
		{"and", Spec{Cmd: "echo one&& echo two"}, "one\ntwo", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, res := run(t, r, tc.spec)
			got := strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
			if got != tc.want || res.Code != tc.code || res.Reason != Exited {
				t.Fatalf("output %q code %d reason %v; want %q code %d exited", got, res.Code, res.Reason, tc.want, tc.code)
			}
		})
	}
}

func TestAuthUnsupported(t *testing.T) {
	r := winRunner(t)
	for _, auth := range []string{AuthSu, AuthSudo} {
		_, err := r.Start(context.Background(), Spec{Cmd: "echo x", Auth: auth}, newOutput())
		if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "not supported on Windows") {
			t.Errorf("auth %s: %v, want ErrSpec (not supported on Windows)", auth, err)
		}
	}
}

func TestMissingWorkDir(t *testing.T) {
	r := winRunner(t)
	_, err := r.Start(context.Background(), Spec{Cmd: "echo x", WorkDir: `C:\agentfleet-no-such-dir`}, newOutput())
	if err == nil {
		t.Fatal("started in a missing directory")
	}
}

// helperSpec runs this test binary as the task's command in the given mode.
func helperSpec(t *testing.T, mode string) Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Cmd: syscall.EscapeArg(exe), Env: []string{helperEnv + "=" + mode}}
}

// childPid reads "child <pid>" from the output.
func childPid(t *testing.T, out *output) int {
	t.Helper()
	text := out.waitFor(t, "sleeping")
	_, rest, ok := strings.Cut(text, "child ")
	if !ok {
		t.Fatalf("no child pid in %q", text)
	}
	pid, err := strconv.Atoi(strings.Fields(rest)[0])
	if err != nil {
		t.Fatalf("child pid in %q: %v", text, err)
	}
	return pid
}

// assertEnded waits until process pid has ended and checks its exit code.
// A pid that cannot be opened any more has ended too.
func assertEnded(t *testing.T, pid int, code uint32) {
	t.Helper()
	h, err := windows.OpenProcess(windows.SYNCHRONIZE|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, 30_000)
	if err != nil || ev != windows.WAIT_OBJECT_0 {
		t.Fatalf("process %d still runs after its task ended (wait: %d %v)", pid, ev, err)
	}
	var got uint32
	if err := windows.GetExitCodeProcess(h, &got); err != nil || got != code {
		t.Fatalf("process %d exit code %d (%v), want %d", pid, got, err, code)
	}
}

// Kill ends the whole tree through the job object: the shell, the command
// and the command's own child, each with exit code 137.
func TestKillTree(t *testing.T) {
	r := winRunner(t)
	out := newOutput()
	task, err := r.Start(context.Background(), helperSpec(t, "tree"), out)
	if err != nil {
		t.Fatal(err)
	}
	child := childPid(t, out)
	if _, err := r.Kill(task.Pid(), ""); err != nil {
		t.Fatal(err)
	}
	res := out.result(t)
	if res.Reason != Killed || res.Code != killedCode {
		t.Fatalf("result %+v, want killed with code %d", res, killedCode)
	}
	assertEnded(t, task.Pid(), killedCode)
	assertEnded(t, child, killedCode)
	if n := r.Running(); n != 0 {
		t.Fatalf("%d tasks still running", n)
	}
}

// The timeout kills the tree too.
func TestTimeoutKillsTree(t *testing.T) {
	r := winRunner(t)
	spec := helperSpec(t, "tree")
	spec.Timeout = 2 * time.Second
	out := newOutput()
	if _, err := r.Start(context.Background(), spec, out); err != nil {
		t.Fatal(err)
	}
	child := childPid(t, out)
	res := out.result(t)
	if res.Reason != TimedOut || res.Code != killedCode {
		t.Fatalf("result %+v, want timed out with code %d", res, killedCode)
	}
	assertEnded(t, child, killedCode)
}

// A child left behind holding the output pipe does not keep the task open:
// anonymous pipes have no read deadline on Windows, so after DrainTimeout
// the job is terminated (stopReading) and the task ends with the main
// process's own exit code.
func TestOrphanHoldingPipe(t *testing.T) {
	r := winRunner(t)
	out := newOutput()
	if _, err := r.Start(context.Background(), helperSpec(t, "orphan"), out); err != nil {
		t.Fatal(err)
	}
	child := childPid(t, out)
	res := out.result(t)
	if res.Reason != Exited || res.Code != 0 {
		t.Fatalf("result %+v, want exited with code 0", res)
	}
	assertEnded(t, child, killedCode)
}

// Close kills every running task's tree.
func TestCloseKillsTrees(t *testing.T) {
	r := New(Options{KillGrace: 100 * time.Millisecond})
	var outs []*output
	var children []int
	for range 2 {
		out := newOutput()
		if _, err := r.Start(context.Background(), helperSpec(t, "tree"), out); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
		children = append(children, childPid(t, out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, out := range outs {
		if res := out.result(t); res.Reason != Killed {
			t.Errorf("task %d: %+v, want killed", i, res)
		}
		assertEnded(t, children[i], killedCode)
	}
}
