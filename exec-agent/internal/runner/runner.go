package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/agentfleet/libagent/protocol"
)

// Defaults for the zero values of Options and Spec.
const (
	DefaultMaxTasks     = 16
	DefaultTimeout      = 60 * time.Second
	DefaultKillGrace    = 2 * time.Second
	DefaultDrainTimeout = time.Second

	// ChunkSize is the most raw output read at once: one Output.Chunk call
	// carries at most this many bytes before decoding (protocol: ≤ 32 KiB per
	// exec_data message).
	ChunkSize = 32 << 10

	// maxPass bounds a password: it is written to the command's terminal or
	// stdin in one write.
	maxPass = 1024

	// markerEnv names the variable that tags every process of a task, so a
	// descendant that left the task's process group and session is still
	// found and killed (Linux).
	markerEnv = "EXEC_AGENT_TASK"
)

// Values of Spec.Auth.
const (
	AuthSu   = protocol.AuthSu
	AuthSudo = protocol.AuthSudo
)

// Errors callers branch on (errors.Is).
var (
	// ErrBusy: the concurrency limit is reached; the message says how many
	// tasks run and what the limit is.
	ErrBusy = errors.New("busy")
	// ErrNoTask: Kill found no running task with that pid / task id.
	ErrNoTask = errors.New("no such task")
	// ErrSpec: the Spec is invalid (bad auth, user, env entry, password).
	ErrSpec = errors.New("invalid exec request")
	// ErrClosed: the Runner was closed.
	ErrClosed = errors.New("runner closed")
)

// Options configure a Runner. The zero value is usable.
type Options struct {
	// MaxTasks is the number of tasks that may run at once; Start returns
	// ErrBusy beyond it. ≤ 0: DefaultMaxTasks.
	MaxTasks int
	// KillGrace is the time between SIGTERM and SIGKILL when a task's process
	// tree is killed. ≤ 0: DefaultKillGrace.
	KillGrace time.Duration
	// DrainTimeout bounds the silence of the output once the task's main
	// process has ended. The output is read to its end (end of file) however
	// long that takes while data keeps coming; only when background
	// processes still hold the terminal or pipe and nothing arrived (and
	// nothing waits unread) for DrainTimeout does the reader let go — the
	// Result then says so (Cut, Holders). They are not killed when the main
	// process exits normally; what they write later is not collected.
	// ≤ 0: DefaultDrainTimeout.
	DrainTimeout time.Duration
	// PassKey decodes "$1$" passwords; nil: only "$0$" passwords work.
	PassKey *protocol.PassKey
	// BaseEnv is the environment Spec.Env is added to; nil: os.Environ().
	BaseEnv []string
	// ProcRoot is where procfs is mounted (Linux); "": "/proc".
	ProcRoot string
	// Shell, Su and Sudo are the programs used (Unix); "": "/bin/sh", "su", "sudo".
	Shell, Su, Sudo string
	// Logger gets kill failures and the like; nil: discarded.
	Logger *slog.Logger
}

// Spec is one command to run, as the exec message (type 10) describes it.
type Spec struct {
	// TaskID is the exec's tid; it names the task for Kill and List.
	TaskID string
	// Cmd is a shell command line (Unix: run by `sh -c`; Windows: `cmd /C`).
	Cmd string
	// Args are appended to Cmd, each quoted for the shell, so they reach the
	// command as given: no escaping needed (v1 joined them unquoted).
	Args []string
	// WorkDir is the working directory; "": the agent's.
	WorkDir string
	// Env entries "K=V" are added to the agent's environment.
	Env []string
	// Timeout ends the task (whole process tree); ≤ 0: DefaultTimeout.
	Timeout time.Duration
	// Auth is "", AuthSu or AuthSudo (Unix only), running the command as
	// User (default root): `sudo -S -u User -- sh -c …` or
	// `su -s /bin/sh -c … User`.
	Auth string
	User string
	// Pass is the password for su/sudo in its wire form ("$0$plain" or
	// "$1$…", see protocol.DecodePass). It is never logged and never reaches
	// the output: with a pty it is typed only once the terminal's echo is off
	// (su/sudo turn it off to read a password), followed by end-of-file, so a
	// wrong password fails at once; with pipes it is written to stdin, which
	// is then closed. Either way the command then reads EOF from its stdin.
	Pass string
	// DeferRM is a path removed (os.Remove) after the process exits, or when
	// it fails to start.
	DeferRM string
	// Pipe runs the command with pipes instead of a pty (Unix; Windows
	// always uses pipes): stdout and stderr share one pipe, so they are
	// interleaved in the order written, without CRLF translation.
	Pipe bool
}

// LogValue keeps the password out of logs.
func (s Spec) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("task_id", s.TaskID), slog.String("cmd", s.Cmd), slog.Any("args", s.Args),
		slog.String("workdir", s.WorkDir), slog.Duration("timeout", s.Timeout),
		slog.String("auth", s.Auth), slog.String("user", s.User), slog.Bool("pass", s.Pass != ""),
		slog.Bool("pipe", s.Pipe))
}

// Output receives a task's output and its end. Both methods are called from
// one goroutine, in order: Chunk for each piece of output as it is read, then
// Done exactly once. Chunk may block — that is the back-pressure: the
// command blocks when it writes more than the pty / pipe buffer holds — but
// it must return eventually (the timeout kills the process, not a stuck
// Chunk). p is valid UTF-8 (see Decoder) and only valid during the call. An
// error from Chunk stops further Chunk calls; the output is then read and
// dropped, the command keeps running, and the error is in Result.Err.
type Output interface {
	Chunk(p []byte) error
	Done(Result)
}

// EndReason says why a task ended.
type EndReason int

// End reasons.
const (
	Exited   EndReason = iota // the process ended by itself
	TimedOut                  // Spec.Timeout passed
	Killed                    // Kill / Task.Kill / Runner.Close
	Canceled                  // the Start context was canceled
)

func (r EndReason) String() string {
	switch r {
	case Exited:
		return "exited"
	case TimedOut:
		return "timed out"
	case Killed:
		return "killed"
	case Canceled:
		return "canceled"
	}
	return fmt.Sprintf("EndReason(%d)", int(r))
}

// Result is the end of a task.
type Result struct {
	TaskID string
	Pid    int
	// Code is the exit code; killed by signal n: 128+n (SIGTERM at a
	// timeout or kill: 143; SIGKILL after the grace: 137).
	Code       int
	Start, End time.Time
	Reason     EndReason
	// Err reports what went wrong around a task that did run: an Output.Chunk
	// error, a failed DeferRM removal. nil normally.
	Err error
	// Dropped counts output bytes that were read but not delivered (after
	// an Output.Chunk error).
	Dropped int64
	// Cut reports that the output was not read to its end: after the main
	// process had exited, Holders (its background processes, as far as
	// they are found; Linux) kept the terminal or pipe open without writing
	// for Options.DrainTimeout. Whatever they write later is not collected.
	Cut     bool
	Holders []int
}

// Incomplete reports whether the output delivered is not the whole output.
func (r Result) Incomplete() bool { return r.Cut || r.Dropped > 0 }

// OutputMsg describes what is missing from the output, "" when nothing is.
func (r Result) OutputMsg() string {
	var parts []string
	if r.Cut {
		who := "background processes"
		if len(r.Holders) > 0 {
			who = fmt.Sprintf("background processes (pid %s)", joinInts(r.Holders))
		}
		parts = append(parts, fmt.Sprintf("output cut: %s kept the output open after the main process exited and were silent for the drain timeout; their later output is not collected", who))
	}
	if r.Dropped > 0 {
		parts = append(parts, fmt.Sprintf("%d output bytes dropped after an output error", r.Dropped))
	}
	return strings.Join(parts, "; ")
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// Info describes a running task (the ps extension).
type Info struct {
	TaskID string
	Pid    int
	Begin  time.Time
}

// Runner starts tasks and keeps the registry of the running ones. Its
// methods are safe for concurrent use.
type Runner struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	closed bool
	n      int // running tasks, including those starting
	tasks  map[int]*Task
	wg     sync.WaitGroup

	bootOnce sync.Once
	bootID   string // Linux: the boot id, read once (see Record)
}

// New returns a Runner.
func New(opts Options) *Runner {
	defaultChildSignals()
	if opts.MaxTasks <= 0 {
		opts.MaxTasks = DefaultMaxTasks
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Shell == "" {
		opts.Shell = "/bin/sh"
	}
	if opts.Su == "" {
		opts.Su = "su"
	}
	if opts.Sudo == "" {
		opts.Sudo = "sudo"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{opts: opts, log: log, tasks: make(map[int]*Task)}
}

// Task is a running (or finished) command.
type Task struct {
	r      *Runner
	spec   Spec
	out    Output
	p      *proc
	pid    int
	start  time.Time
	pass   string
	killCh chan struct{}
	kill   sync.Once
	exited chan struct{} // closed once the main process is reaped
	done   chan struct{} // closed after Output.Done returned
	res    Result

	// lastRead is when the reader last got output (unix nanoseconds); the
	// watchdog measures the silence of the output from it.
	lastRead atomic.Int64
	// cut and holders are set by the watchdog before it stops the reader,
	// read by run after the watchdog has returned.
	cut     bool
	holders []int

	mu     sync.Mutex
	reason EndReason // set by the watchdog before it kills
}

// acquire takes one of the MaxTasks slots (a task or a shell), and with
// wait a place in what Close waits for: ErrClosed after Close, ErrBusy when
// every slot is taken.
func (r *Runner) acquire(wait bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrClosed
	case r.n >= r.opts.MaxTasks:
		return fmt.Errorf("%w: %d tasks running, limit %d", ErrBusy, r.n, r.opts.MaxTasks)
	}
	r.n++
	if wait {
		r.wg.Add(1)
	}
	return nil
}

// Start starts spec and returns at once; the output goes to out, and
// out.Done follows the last chunk. Canceling ctx kills the task. A start
// failure (busy, bad spec, no such program or directory) is returned and out
// is never called.
func (r *Runner) Start(ctx context.Context, spec Spec, out Output) (*Task, error) {
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultTimeout
	}
	prep, pass, err := r.prepare(spec)
	if err != nil {
		r.removeDeferred(spec.DeferRM)
		return nil, err
	}

	if err := r.acquire(true); err != nil {
		return nil, err
	}

	p, err := startProc(prep)
	if err != nil {
		r.mu.Lock()
		r.n--
		r.mu.Unlock()
		r.wg.Done()
		r.removeDeferred(spec.DeferRM)
		return nil, fmt.Errorf("start %q: %w", clip(spec.Cmd), err)
	}
	t := &Task{
		r: r, spec: spec, out: out, p: p, pid: p.pid(), start: time.Now(), pass: pass,
		killCh: make(chan struct{}), exited: make(chan struct{}), done: make(chan struct{}),
	}
	r.mu.Lock()
	r.tasks[t.pid] = t
	r.mu.Unlock()
	go t.run(ctx)
	return t, nil
}

// Check validates spec as Start does (auth, user, password, environment)
// without starting anything, so a caller can refuse a bad request before
// doing work for it.
func (r *Runner) Check(spec Spec) error {
	_, _, err := r.prepare(spec)
	return err
}

// clipLen is how much of a request's value an error message quotes.
const clipLen = 256

// clip shortens s for an error message: a command can be megabytes long,
// and the message goes back to the caller, into logs and the store.
func clip(s string) string {
	if len(s) <= clipLen {
		return s
	}
	cut := clipLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

// prepared is a Spec turned into what the OS layer needs.
type prepared struct {
	argv     []string
	env      []string
	dir      string
	pipe     bool
	feedPass bool
	marker   string
	procRoot string
}

func (r *Runner) prepare(spec Spec) (*prepared, string, error) {
	pass, err := protocol.DecodePass(spec.Pass, r.opts.PassKey)
	if err != nil {
		return nil, "", fmt.Errorf("%w: pass: %w", ErrSpec, err)
	}
	if len(pass) > maxPass || strings.ContainsAny(pass, "\x00\r\n") {
		return nil, "", fmt.Errorf("%w: pass: longer than %d bytes or contains a line break or NUL", ErrSpec, maxPass)
	}
	env := r.opts.BaseEnv
	if env == nil {
		env = os.Environ()
	}
	env = slices.Clip(env)
	for i, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return nil, "", fmt.Errorf("%w: env[%d] %q: want K=V", ErrSpec, i, clip(kv))
		}
	}
	var mark [8]byte
	_, _ = rand.Read(mark[:])
	marker := hex.EncodeToString(mark[:])
	env = append(append(env, spec.Env...), markerEnv+"="+marker)

	p := &prepared{env: env, dir: spec.WorkDir, pipe: spec.Pipe, marker: marker, procRoot: r.opts.ProcRoot}
	if err := r.command(spec, p); err != nil {
		return nil, "", err
	}
	p.feedPass = pass != "" && spec.Auth != ""
	return p, pass, nil
}

// Kill kills the whole process tree of the running task with that pid
// and/or task id (0 / "": any; when both are given both must match) and
// returns at once; the task reports its end through its Output as usual.
func (r *Runner) Kill(pid int, taskID string) (Info, error) {
	if pid == 0 && taskID == "" {
		return Info{}, fmt.Errorf("kill: %w: neither pid nor task id given", ErrNoTask)
	}
	r.mu.Lock()
	var t *Task
	if pid != 0 {
		t = r.tasks[pid]
		if t != nil && taskID != "" && t.spec.TaskID != taskID {
			t = nil
		}
	} else {
		for _, c := range r.tasks {
			if c.spec.TaskID == taskID {
				t = c
				break
			}
		}
	}
	r.mu.Unlock()
	if t == nil {
		return Info{TaskID: taskID, Pid: pid}, fmt.Errorf("kill pid %d task %q: %w", pid, taskID, ErrNoTask)
	}
	t.Kill()
	return t.Info(), nil
}

// List returns the running tasks, oldest first.
func (r *Runner) List() []Info {
	r.mu.Lock()
	list := make([]Info, 0, len(r.tasks))
	for _, t := range r.tasks {
		list = append(list, t.Info())
	}
	r.mu.Unlock()
	slices.SortFunc(list, func(a, b Info) int { return a.Begin.Compare(b.Begin) })
	return list
}

// Running returns how many tasks run now.
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close refuses new tasks, kills the running ones and waits until they have
// reported their end, or ctx is done.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	for _, t := range r.tasks {
		t.Kill()
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("runner close: %w", ctx.Err())
	}
}

// Info describes the task.
func (t *Task) Info() Info { return Info{TaskID: t.spec.TaskID, Pid: t.pid, Begin: t.start} }

// Pid is the pid of the task's main process (the shell, su or sudo).
func (t *Task) Pid() int { return t.pid }

// Kill kills the task's process tree (once; later calls do nothing) and
// returns at once.
func (t *Task) Kill() { t.kill.Do(func() { close(t.killCh) }) }

// Wait waits until Output.Done has returned and returns the same Result.
func (t *Task) Wait() Result {
	<-t.done
	return t.res
}

// run owns the task: it reads the output to its end, then waits for the
// process, then reports Done — so Done follows the last Chunk by construction.
func (t *Task) run(ctx context.Context) {
	var helpers sync.WaitGroup
	readDone := make(chan struct{})
	var state *os.ProcessState
	helpers.Add(2)
	go func() {
		defer helpers.Done()
		state = t.p.wait()
		close(t.exited)
	}()
	go func() {
		defer helpers.Done()
		t.watch(ctx, readDone)
	}()
	if t.pass != "" && t.p.feedPass {
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			t.p.typePassword(t.pass, readDone, t.r.log)
		}()
	}

	dropped, eof, outErr := t.pump()
	<-t.exited
	close(readDone)
	helpers.Wait()
	t.p.close()

	res := Result{
		TaskID: t.spec.TaskID, Pid: t.pid, Code: exitCode(state),
		Start: t.start, End: time.Now(), Err: outErr, Dropped: dropped,
		// A reader that reached the end of file lost nothing, unless the end
		// came from ending the holders (Windows).
		Cut: t.cut && (stopEnds || !eof), Holders: t.holders,
	}
	t.mu.Lock()
	res.Reason = t.reason
	t.mu.Unlock()
	if err := t.r.removeDeferred(t.spec.DeferRM); err != nil {
		res.Err = errors.Join(res.Err, err)
	}

	r := t.r
	r.mu.Lock()
	delete(r.tasks, t.pid)
	r.n--
	r.mu.Unlock()
	t.res = res
	defer r.wg.Done()
	defer close(t.done)
	t.out.Done(res)
}

// pump copies the output, decoded, to t.out until EOF, or until the
// watchdog stops the reader (see Options.DrainTimeout); what is buffered by
// then is still read. It returns the bytes read but not delivered after an
// Output.Chunk error, whether the output was read to its end, and that error.
func (t *Task) pump() (dropped int64, eof bool, outErr error) {
	var dec Decoder
	buf := make([]byte, ChunkSize)
	var text []byte
	deliver := func() {
		if len(text) == 0 {
			return
		}
		if outErr != nil {
			dropped += int64(len(text))
			return
		}
		if err := t.out.Chunk(text); err != nil {
			outErr = fmt.Errorf("output: %w", err)
			dropped += int64(len(text))
		}
	}
	for {
		n, err := t.p.out.Read(buf)
		if n > 0 {
			t.lastRead.Store(time.Now().UnixNano())
			text = dec.Decode(text[:0], buf[:n], false)
			deliver()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Stopped by the watchdog: take what is buffered.
				eof = t.p.readBuffered(buf, func(p []byte) {
					text = dec.Decode(text[:0], p, false)
					deliver()
				})
			} else {
				eof = true
				if !errors.Is(err, io.EOF) && !isPtyEOF(err) {
					t.r.log.Warn("exec: reading output", "task_id", t.spec.TaskID, "pid", t.pid, "err", err)
				}
			}
			break
		}
	}
	text = dec.Decode(text[:0], nil, true)
	deliver()
	return dropped, eof, outErr
}

// watch enforces the timeout, kill requests and cancellation, and, once
// the main process has exited, lets go of the output when it has been silent
// for DrainTimeout while background processes still hold it.
func (t *Task) watch(ctx context.Context, readDone <-chan struct{}) {
	timeout := time.NewTimer(t.spec.Timeout)
	defer timeout.Stop()
	var idle *time.Timer
	var idleC <-chan time.Time
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	drain := t.r.opts.DrainTimeout
	exited := t.exited
	killed := false
	killWith := func(reason EndReason) {
		if killed {
			return
		}
		killed = true
		select {
		case <-t.exited:
			// The main process is gone and its code stands; what is left of
			// the tree (background processes holding the output) dies.
		default:
			t.mu.Lock()
			t.reason = reason
			t.mu.Unlock()
		}
		t.p.killTree(t.r.opts.KillGrace, t.r.log)
	}
	ctxDone := ctx.Done()
	for {
		select {
		case <-readDone:
			return
		case <-exited:
			exited = nil
			idle = time.NewTimer(drain)
			idleC = idle.C
		case <-idleC:
			// Data that arrived within the window, or that waits unread (the
			// reader is behind: a slow Output, or the agent starved of CPU),
			// means the output is not idle.
			if wait := drain - time.Since(time.Unix(0, t.lastRead.Load())); wait > 0 {
				idle.Reset(wait)
				continue
			}
			if t.p.pending() > 0 {
				idle.Reset(drain)
				continue
			}
			idleC = nil
			t.cut, t.holders = true, t.p.members()
			t.r.log.Warn("exec: output cut: background processes hold it open, silent since the main process exited",
				"task_id", t.spec.TaskID, "pid", t.pid, "holders", t.holders, "drain_timeout", drain)
			t.p.stopReading()
		case <-timeout.C:
			killWith(TimedOut)
		case <-t.killCh:
			killWith(Killed)
		case <-ctxDone:
			ctxDone = nil
			killWith(Canceled)
		}
	}
}

func (r *Runner) removeDeferred(path string) error {
	if path == "" {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("drm: %w", err)
	}
	return nil
}
