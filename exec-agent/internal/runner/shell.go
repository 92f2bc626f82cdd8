package runner

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// ErrShellUnsupported: the agent cannot run interactive sessions on this
// OS (Windows: no ConPTY support yet).
var ErrShellUnsupported = errors.New("interactive shells are not supported")

// ShellSpec is an interactive session, as pty_open describes it.
type ShellSpec struct {
	// TaskID is the pty_open's tid, for logs.
	TaskID string
	// Cmd is a shell command line run by `sh -c`; "" runs the user's login
	// shell (from the password database; Options.Shell when there is none).
	Cmd string
	// User runs the session as that user through `su -l` (root needs no
	// password; otherwise su asks for it in the terminal); "" or the
	// agent's own user runs it directly.
	User string
	// Env entries "K=V" are added to the environment. su -l keeps only
	// TERM of them: the session gets the user's login environment.
	Env []string
	// Cols and Rows are the terminal size, 1…protocol.PtyMaxSize.
	Cols, Rows uint16
	// Passwd is the password database the login shell and home directory
	// are read from; "": /etc/passwd.
	Passwd string
}

// LogValue lists the spec for logs (the environment may hold secrets of
// the operator's: only its keys are logged).
func (s ShellSpec) LogValue() slog.Value {
	keys := make([]string, 0, len(s.Env))
	for _, kv := range s.Env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return slog.GroupValue(
		slog.String("task_id", s.TaskID), slog.String("cmd", s.Cmd), slog.String("user", s.User),
		slog.Any("env_keys", keys), slog.Int("cols", int(s.Cols)), slog.Int("rows", int(s.Rows)))
}

// Shell is a running interactive session: a process tree in its own
// session with a pty as its controlling terminal. It holds one of the
// runner's MaxTasks slots (shared with commands) until Close.
//
// Concurrency: Read is called by one goroutine and Write by one other;
// Resize, Hangup, Exited, SetReadDeadline and Pid by any; Close once, after
// the reader is done.
type Shell struct {
	r      *Runner
	p      *proc
	pid    int
	begin  time.Time
	exited chan struct{} // closed once the main process is reaped
	state  *os.ProcessState
	hangup sync.Once
	close  sync.Once
	code   int
}

// StartShell starts an interactive session. A start failure (busy, bad
// spec, no such program, ErrShellUnsupported) is returned.
func (r *Runner) StartShell(spec ShellSpec) (*Shell, error) {
	if err := protocol.CheckSize(spec.Cols, spec.Rows); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	for i, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return nil, fmt.Errorf("%w: env[%d] %q: want K=V", ErrSpec, i, kv)
		}
	}
	if err := r.acquire(false); err != nil {
		return nil, err
	}
	p, err := r.startShell(spec)
	if err != nil {
		r.releaseShell()
		return nil, err
	}
	sh := &Shell{r: r, p: p, pid: p.pid(), begin: time.Now(), exited: make(chan struct{})}
	go func() {
		sh.state = p.wait()
		close(sh.exited)
	}()
	return sh, nil
}

func (r *Runner) releaseShell() {
	r.mu.Lock()
	r.n--
	r.mu.Unlock()
}

// Pid is the session's main process (the shell, or su).
func (sh *Shell) Pid() int { return sh.pid }

// Begin is when the session started.
func (sh *Shell) Begin() time.Time { return sh.begin }

// Read reads terminal output. It returns io.EOF once every process has
// closed the terminal (or after StopReading).
func (sh *Shell) Read(b []byte) (int, error) {
	n, err := sh.p.out.Read(b)
	if err != nil && (isPtyEOF(err) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed)) {
		err = io.EOF
	}
	return n, err
}

// Write types b into the terminal. It blocks while the terminal's input
// buffer is full (the program does not read).
func (sh *Shell) Write(b []byte) (int, error) { return sh.p.out.Write(b) }

// Resize sets the terminal size; the foreground program gets SIGWINCH.
func (sh *Shell) Resize(cols, rows uint16) error {
	if err := protocol.CheckSize(cols, rows); err != nil {
		return err
	}
	return sh.p.resize(cols, rows)
}

// Exited is closed once the main process has ended.
func (sh *Shell) Exited() <-chan struct{} { return sh.exited }

// SetReadDeadline makes a pending or later Read that has no output by t
// return io.EOF: once the main process has ended, the output of background
// processes that keep the terminal open is given up that way.
func (sh *Shell) SetReadDeadline(t time.Time) error { return sh.p.out.SetReadDeadline(t) }

// Hangup ends the session as a terminal hang-up does: SIGHUP to the
// session's process group, then the whole process tree is killed as a
// command's (SIGTERM, Options.KillGrace, SIGKILL). It blocks until the tree
// is gone (at most about KillGrace); later calls do nothing.
func (sh *Shell) Hangup() {
	sh.hangup.Do(func() {
		sh.p.hangup(sh.r.log)
		sh.p.killTree(sh.r.opts.KillGrace, sh.r.log)
	})
}

// Close waits for the main process (Hangup first to end it), releases
// the terminal and the runner slot, and returns the exit code: the
// process's, or 128+n when signal n killed it. Later calls return the
// same code.
func (sh *Shell) Close() int {
	sh.close.Do(func() {
		<-sh.exited
		sh.p.close()
		sh.code = exitCode(sh.state)
		sh.r.releaseShell()
	})
	return sh.code
}
