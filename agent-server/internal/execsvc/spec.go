package execsvc

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/store"
)

// DefaultTimeout is the command timeout when Spec.Timeout is not positive.
const DefaultTimeout = 60 * time.Second

// CodeKilled is the exit code of a command killed with SIGKILL (128+9);
// legacy agents' -1 is stored as this.
const CodeKilled = 137

// Spec is a command to run on an agent.
type Spec struct {
	Cmd     string        `json:"cmd"`
	Args    []string      `json:"args,omitempty"`
	Auth    string        `json:"auth,omitempty"` // "", "su" or "sudo"
	User    string        `json:"user,omitempty"`
	Pass    string        `json:"-"` // sent to the agent only: never stored, logged or echoed
	WorkDir string        `json:"workdir,omitempty"`
	Env     []string      `json:"env,omitempty"` // "K=V"
	Timeout time.Duration `json:"timeout"`       // <= 0: DefaultTimeout
	DeferRM string        `json:"drm,omitempty"` // path the agent removes after the run
	Pipe    bool          `json:"pipe,omitempty"`
}

// Validate checks s; errors are ErrInvalid *fault.Errors naming the field.
func (s *Spec) Validate() error {
	switch {
	case strings.TrimSpace(s.Cmd) == "":
		return fault.Invalidf(ErrInvalid, "missing parameter cmd")
	case s.Auth != "" && s.Auth != protocol.AuthSu && s.Auth != protocol.AuthSudo:
		return fault.Invalidf(ErrInvalid, "invalid parameter auth: must be one of su, sudo")
	case s.Auth != "" && s.User == "":
		return fault.Invalidf(ErrInvalid, "missing parameter user (needed with auth)")
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fault.Invalidf(ErrInvalid, "invalid parameter env: %q is not K=V", kv)
		}
	}
	// No OS takes NUL in an argument, a path or the environment: v1 agents
	// would fail with "invalid argument" as their own error.
	fields := []struct {
		name string
		vals []string
	}{{"cmd", []string{s.Cmd}}, {"args", s.Args}, {"workdir", []string{s.WorkDir}}, {"user", []string{s.User}}, {"env", s.Env}}
	for _, f := range fields {
		for _, v := range f.vals {
			if strings.IndexByte(v, 0) >= 0 {
				return fault.Invalidf(ErrInvalid, "invalid parameter %s: contains NUL", f.name)
			}
		}
	}
	return nil
}

// RunOptions tune one Run.
type RunOptions struct {
	// TaskID records the result under this existing task (fleet tasks,
	// which own their task's state). Empty: Run creates a task of Kind
	// and moves it to done (or failed) when the command ends.
	TaskID string
	// Kind of the created task; default store.KindExec.
	Kind store.TaskKind
	// CreatedBy names the caller (API token) in the created task.
	CreatedBy string
	// Detail is stored as the created task's spec; default: the Spec as
	// JSON (without Pass).
	Detail json.RawMessage
}
