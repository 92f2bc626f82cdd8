// Package service installs and controls an agent as an OS service through
// github.com/kardianos/service (systemd, SysV, upstart, OpenRC, Windows SCM,
// launchd) and runs it under the service manager or in the foreground.
//
// Restart on failure is configured wherever the manager can do it:
//
//   - systemd: our own unit (Restart=always, RestartSec=5, no start limit;
//     kardianos's stock unit waits 120 s between restarts);
//   - Windows SCM: recovery action "restart" after 5 s, failure count reset
//     after one day (kardianos options OnFailure, OnFailureDelayDuration,
//     OnFailureResetPeriod);
//   - launchd: KeepAlive (kardianos default);
//   - upstart: respawn (kardianos's job file);
//   - SysV init has no supervisor: the agent is not restarted there.
package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ks "github.com/kardianos/service"
)

// Config describes the service.
type Config struct {
	// Name is the service name (unit name, SCM key); no spaces.
	Name string
	// DisplayName is the human name (Windows, launchd); default Name.
	DisplayName string
	// Description is one line shown by the service manager.
	Description string
	// Executable is the absolute path of the agent binary (default: this
	// executable).
	Executable string
	// Args are the arguments the service is started with, e.g.
	// {"run", "--conf", "/opt/agent/conf/agent.conf"} (absolute paths: the
	// manager's working directory is not the operator's).
	Args []string
	// WorkingDir is the service's working directory (default: the
	// executable's directory, so relative paths in the config such as
	// ./logs resolve next to the binary).
	WorkingDir string
	// StopTimeout bounds how long Run waits for start to return after a stop
	// request (default 15 s).
	StopTimeout time.Duration
}

// State of an installed service.
type State int

// Service states.
const (
	StateUnknown State = iota
	StateRunning
	StateStopped
	StateNotInstalled
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateStopped:
		return "stopped"
	case StateNotInstalled:
		return "not installed"
	}
	return "unknown"
}

// Sentinel errors.
var (
	// ErrNotInstalled is returned by Control("status") when the
	// service is not installed.
	ErrNotInstalled = errors.New("not installed")
	// ErrStopped is returned by Control("status") when the service is
	// installed but not running.
	ErrStopped = errors.New("stopped")
	// ErrUnknownAction names an action Control does not know.
	ErrUnknownAction = errors.New("unknown service action")
	// ErrStopTimeout is returned by Run when start did not return within
	// StopTimeout after a stop request.
	ErrStopTimeout = errors.New("stop timed out")
)

// Actions are the actions Control accepts.
var Actions = []string{"install", "uninstall", "start", "stop", "restart", "status"}

const (
	restartDelay        = 5 * time.Second
	failureResetSeconds = 24 * 60 * 60
	defaultStopTimeout  = 15 * time.Second
)

// systemdUnit replaces kardianos's stock unit for restart-on-failure after
// 5 s instead of 120 s and no start-rate limit (an agent must come back
// after a long outage). It is rendered by kardianos's template engine.
const systemdUnit = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
{{if WorkingDirectory}}WorkingDirectory={{WorkingDirectory | cmdEscape}}
{{end}}{{if UserName}}User={{UserName}}
{{end}}Restart={{Restart}}
RestartSec=5
KillMode=mixed
TimeoutStopSec=30
EnvironmentFile=-/etc/sysconfig/{{Name}}

[Install]
WantedBy=multi-user.target
`

// kardianosConfig maps c to the library's configuration, filling defaults.
func kardianosConfig(c Config) (*ks.Config, error) {
	if c.Name == "" || strings.ContainsAny(c.Name, " \t/\\") {
		return nil, fmt.Errorf("service: bad name %q (want a non-empty name without spaces or slashes)", c.Name)
	}
	exe := c.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("service %s: %w", c.Name, err)
		}
	}
	if !filepath.IsAbs(exe) {
		return nil, fmt.Errorf("service %s: executable %q is not an absolute path", c.Name, exe)
	}
	wd := c.WorkingDir
	if wd == "" {
		wd = filepath.Dir(exe)
	}
	display := c.DisplayName
	if display == "" {
		display = c.Name
	}
	return &ks.Config{
		Name:             c.Name,
		DisplayName:      display,
		Description:      c.Description,
		Executable:       exe,
		Arguments:        append([]string(nil), c.Args...),
		WorkingDirectory: wd,
		Option: ks.KeyValue{
			// systemd
			"SystemdScript": systemdUnit,
			"Restart":       "always",
			// Windows service recovery
			"OnFailure":              "restart",
			"OnFailureDelayDuration": restartDelay.String(),
			"OnFailureResetPeriod":   failureResetSeconds,
			// launchd
			"KeepAlive": true,
			"RunAtLoad": true,
		},
	}, nil
}

func validAction(action string) error {
	for _, a := range Actions {
		if a == action {
			return nil
		}
	}
	return fmt.Errorf("%w %q (valid: %s)", ErrUnknownAction, action, strings.Join(Actions, ", "))
}

// Control performs action on the service: install, uninstall, start, stop,
// restart or status. For status it returns nil when the service runs and an
// error wrapping ErrStopped or ErrNotInstalled otherwise; Status gives the
// state as a value.
func Control(c Config, action string) error {
	if err := validAction(action); err != nil {
		return fmt.Errorf("service %s: %w", c.Name, err)
	}
	s, err := newService(c, nil)
	if err != nil {
		return err
	}
	if action == "status" {
		st, err := status(s, c.Name)
		switch {
		case err != nil:
			return fmt.Errorf("service %s: status: %w", c.Name, err)
		case st == StateStopped:
			return fmt.Errorf("service %s: %w", c.Name, ErrStopped)
		case st == StateNotInstalled:
			return fmt.Errorf("service %s: %w", c.Name, ErrNotInstalled)
		}
		return nil
	}
	if err := ks.Control(s, action); err != nil {
		return fmt.Errorf("service %s: %w", c.Name, err)
	}
	return nil
}

// Status returns the state of the installed service.
func Status(c Config) (State, error) {
	s, err := newService(c, nil)
	if err != nil {
		return StateUnknown, err
	}
	st, err := status(s, c.Name)
	if err != nil {
		return st, fmt.Errorf("service %s: status: %w", c.Name, err)
	}
	return st, nil
}

func status(s ks.Service, name string) (State, error) {
	if st, ok := knownState(s, name); ok {
		return st, nil
	}
	st, err := s.Status()
	if errors.Is(err, ks.ErrNotInstalled) {
		return StateNotInstalled, nil
	}
	if err != nil {
		return StateUnknown, err
	}
	switch st {
	case ks.StatusRunning:
		return StateRunning, nil
	case ks.StatusStopped:
		return StateStopped, nil
	}
	return StateUnknown, nil
}

func newService(c Config, p ks.Interface) (ks.Service, error) {
	kc, err := kardianosConfig(c)
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = nopProgram{}
	}
	s, err := ks.New(p, kc)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", c.Name, err)
	}
	return s, nil
}

type nopProgram struct{}

func (nopProgram) Start(ks.Service) error { return nil }
func (nopProgram) Stop(ks.Service) error  { return nil }
