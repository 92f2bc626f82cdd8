package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// Command is what runs on one agent.
type Command struct {
	Cmd     string
	Args    []string
	Auth    string // "", "su" or "sudo"
	User    string
	WorkDir string
	Env     []string
	Timeout time.Duration
}

// StartOptions say where a command's result is recorded.
type StartOptions struct {
	// TaskID records the result under this task (fleet tasks). Empty: the
	// executor creates a task of its own (layout steps) with Detail as its
	// spec and CreatedBy as its creator.
	TaskID    string
	CreatedBy string
	Detail    []byte
}

// PushFile is a file written to an agent.
type PushFile struct {
	Path         string    // absolute on the agent
	Body         io.Reader // Size bytes
	Size         int64
	Mode         os.FileMode
	Owner, Group string
	Auth, User   string
}

// Handle follows one command. *execsvc.Exec implements it.
type Handle interface {
	TaskID() string
	// Done is closed when the result is final (or lost for good).
	Done() <-chan struct{}
	// Changed is closed at the next change of output or state.
	Changed() <-chan struct{}
	Result() store.Result
	// ReadOutput reads output from off; next-off-len(data) bytes were
	// dropped before data.
	ReadOutput(ctx context.Context, off int64, max int) (data []byte, next int64, err error)
	Kill(ctx context.Context) error
	// Wait waits for Done and returns the result once stored.
	Wait(ctx context.Context) (store.Result, error)
}

// Executor runs commands and moves files on agents. [NewExecutor] adapts
// the exec service; tests may bring their own.
type Executor interface {
	// Online reports whether the agent is connected, and its type.
	Online(agentID string) (agentType string, ok bool)
	// Start runs c on the agent and returns once it started. A Handle
	// returned with an error has its (failed) result recorded.
	Start(ctx context.Context, agentID string, c Command, o StartOptions) (Handle, error)
	// Kill kills the command of a task on an agent that may have been
	// started before a restart (no Handle).
	Kill(ctx context.Context, agentID, taskID string) error
	// Push writes a file on the agent.
	Push(ctx context.Context, agentID string, f PushFile) error
	// Pull copies a file of the agent to w, at most limit bytes.
	Pull(ctx context.Context, agentID, path string, w io.Writer, limit int64) (int64, error)
}

// execExecutor adapts *execsvc.Service.
type execExecutor struct {
	svc      *execsvc.Service
	hub      *hub.Hub
	cacheDir string
}

// NewExecutor returns the Executor of the exec service svc on hub h.
func NewExecutor(svc *execsvc.Service, h *hub.Hub) Executor {
	return execExecutor{svc: svc, hub: h, cacheDir: svc.CacheDir()}
}

func (x execExecutor) Online(id string) (string, bool) {
	s, ok := x.hub.Session(id)
	if !ok {
		return "", false
	}
	return s.Info().Type, true
}

func (x execExecutor) Start(ctx context.Context, id string, c Command, o StartOptions) (Handle, error) {
	spec := execsvc.Spec{Cmd: c.Cmd, Args: c.Args, Auth: c.Auth, User: c.User, WorkDir: c.WorkDir, Env: c.Env, Timeout: c.Timeout}
	e, err := x.svc.Run(ctx, id, spec, execsvc.RunOptions{TaskID: o.TaskID, Kind: store.KindExec, CreatedBy: o.CreatedBy, Detail: o.Detail})
	if e == nil {
		return nil, err
	}
	return e, err
}

// agentTasks is implemented by executors that can ask an agent which
// tasks it runs, after its journal replay (execsvc.Service.AgentTasks).
type agentTasks interface {
	AgentTasks(ctx context.Context, agentID string) (map[string]bool, error)
}

func (x execExecutor) AgentTasks(ctx context.Context, id string) (map[string]bool, error) {
	return x.svc.AgentTasks(ctx, id)
}

func (x execExecutor) Kill(ctx context.Context, id, taskID string) error {
	if e := x.svc.Task(id, taskID); e != nil {
		return e.Kill(ctx)
	}
	ps, err := x.svc.Ps(ctx, id)
	if err != nil {
		return err
	}
	for _, t := range ps {
		if t.TaskID == taskID {
			return x.svc.KillPID(ctx, id, t.Pid)
		}
	}
	return fmt.Errorf("kill task %s on agent %s: %w", taskID, id, execsvc.ErrNoSuchTask)
}

func (x execExecutor) Push(ctx context.Context, id string, f PushFile) error {
	i := strings.LastIndexAny(f.Path, `/\`)
	if i < 0 {
		return fmt.Errorf("push %s: not an absolute path", f.Path)
	}
	dir, name := f.Path[:i], f.Path[i+1:]
	if dir == "" {
		dir = "/"
	}
	sp, err := execsvc.NewSpool(x.cacheDir, f.Body, f.Size)
	if err != nil {
		return err
	}
	defer sp.Close()
	_, err = x.svc.Upload(ctx, id, execsvc.UploadSpec{Dir: dir, Name: name, Mod: f.Mode, OwnUser: f.Owner, OwnGroup: f.Group, Auth: f.Auth, User: f.User}, sp)
	return err
}

func (x execExecutor) Pull(ctx context.Context, id, path string, w io.Writer, limit int64) (int64, error) {
	d, err := x.svc.Download(ctx, id, path, 0, 0)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	if d.Size > limit || d.Total > limit {
		return 0, fmt.Errorf("pull %s: %w: over %d bytes", path, errTooLarge, limit)
	}
	return d.WriteTo(w)
}

var errTooLarge = errors.New("file too large")
