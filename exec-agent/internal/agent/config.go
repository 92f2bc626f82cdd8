package agent

import (
	"fmt"
	"time"

	"github.com/agentfleet/libagent"

	"github.com/agentfleet/exec-agent/internal/runner"
)

// MaxTasksLimit is the largest exec.max_tasks: an exec holds one of
// libagent's 64 handler workers while it runs, and ls, uploads, downloads
// and kills need the others.
const MaxTasksLimit = 48

// DefaultShellIdleTimeout is exec.shell_idle_timeout's default.
const DefaultShellIdleTimeout = 30 * time.Minute

// Config is the exec-agent's config file (conf/agent.conf).
type Config struct {
	Basic   libagent.Basic `kv:"basic"`
	Exec    ExecConfig     `kv:"exec"`
	File    FileConfig     `kv:"file"`
	Install InstallConfig  `kv:"install"`
}

// ExecConfig is exec.*.
type ExecConfig struct {
	// MaxTasks is how many commands may run at once; more get a "busy"
	// execd. 1…MaxTasksLimit.
	MaxTasks int `kv:"max_tasks"`
	// KillGrace is the time between SIGTERM and SIGKILL when a task's
	// process tree is killed (kill, timeout, shutdown).
	KillGrace time.Duration `kv:"kill_grace"`
	// DrainTimeout: output is read to its end; only when background
	// processes hold it open and write nothing for this long after the main
	// process exited does the agent stop reading (and report the cut).
	DrainTimeout time.Duration `kv:"drain_timeout"`
	// ShellIdleTimeout ends an interactive session (pty.v1) that had no
	// input and no output for that long; 0: never. Sessions count against
	// MaxTasks like commands.
	ShellIdleTimeout time.Duration `kv:"shell_idle_timeout"`
}

// FileConfig is file.*.
type FileConfig struct {
	// TempDir is where uploads to "$$TMP$$" go; "": the OS temp directory.
	TempDir string `kv:"temp_dir"`
}

// InstallConfig is install.*.
type InstallConfig struct {
	// DpkgArgs and RPMArgs are extra arguments of dpkg and rpm, separated
	// by spaces (special hosts and tests: --root=…, --admindir=…).
	DpkgArgs string `kv:"dpkg_args"`
	RPMArgs  string `kv:"rpm_args"`
	// ExeFlags are an exe installer's silent flags, separated by spaces;
	// "": /S (NSIS).
	ExeFlags string `kv:"exe_flags"`
}

// DefaultConfig returns the defaults of conf/agent.conf.
func DefaultConfig() Config {
	return Config{
		Basic: libagent.DefaultBasic(),
		Exec: ExecConfig{
			MaxTasks:     runner.DefaultMaxTasks,
			KillGrace:    runner.DefaultKillGrace,
			DrainTimeout: runner.DefaultDrainTimeout,

			ShellIdleTimeout: DefaultShellIdleTimeout,
		},
	}
}

// Validate checks the exec-agent's own keys (the runtime checks basic.*).
func (c *Config) Validate() error {
	if c.Exec.MaxTasks < 1 || c.Exec.MaxTasks > MaxTasksLimit {
		return fmt.Errorf("%w: exec.max_tasks = %d: must be 1…%d", libagent.ErrInvalidConfig, c.Exec.MaxTasks, MaxTasksLimit)
	}
	if c.Exec.KillGrace < 100*time.Millisecond || c.Exec.KillGrace > time.Minute {
		return fmt.Errorf("%w: exec.kill_grace = %v: must be 100ms…1m", libagent.ErrInvalidConfig, c.Exec.KillGrace)
	}
	if c.Exec.DrainTimeout < 10*time.Millisecond || c.Exec.DrainTimeout > time.Minute {
		return fmt.Errorf("%w: exec.drain_timeout = %v: must be 10ms…1m", libagent.ErrInvalidConfig, c.Exec.DrainTimeout)
	}
	if c.Exec.ShellIdleTimeout < 0 || c.Exec.ShellIdleTimeout > 7*24*time.Hour {
		return fmt.Errorf("%w: exec.shell_idle_timeout = %v: must be 0 (never) or up to 7d", libagent.ErrInvalidConfig, c.Exec.ShellIdleTimeout)
	}
	return nil
}
