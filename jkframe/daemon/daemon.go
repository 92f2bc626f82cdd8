// Package daemon keeps a worker process running: it starts the worker,
// restarts it with backoff when it exits, forwards the supervisor's signals
// to it and owns a pid file.
//
// Every exit of the worker that the supervisor did not ask for, whatever its
// status, is unexpected and leads to a restart after a delay drawn with full
// jitter: uniform in [0, min(MaxBackoff, MinBackoff·2ⁿ)] for the n-th
// consecutive quick exit. The count n goes back to zero only when the worker
// had stayed up for at least Stable, so a crash loop backs off while a
// worker that crashes once a day restarts at once.
//
// Stopping: cancelling the context, SIGINT or SIGTERM sends the worker SIGTERM
// (SIGINT for SIGINT), waits up to Grace for it to exit, then kills it; Run
// then returns nil. SIGHUP is forwarded and the worker keeps running. On
// Windows, where signals cannot be sent to another process, stopping kills
// the worker at once.
//
// One goroutine, the one calling Run, owns the child: it starts it, sends it
// signals and decides about restarts; a helper goroutine only waits for the
// child's exit and always finishes before Run returns.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"time"

	"github.com/agentfleet/jkframe/backoff"
)

// Defaults for the zero values of the Supervisor fields.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = time.Minute
	DefaultStable     = time.Minute
	DefaultGrace      = 10 * time.Second
)

// Clock is the time source of a Supervisor; tests pass a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Supervisor runs and restarts one worker process. Set the fields, then call
// Run once; the fields must not change while Run runs.
type Supervisor struct {
	Command []string // program and arguments; required
	Env     []string // worker environment; nil inherits the supervisor's
	Dir     string   // worker working directory; empty: the supervisor's
	PidFile string   // if set, holds the supervisor's pid while Run runs

	MinBackoff time.Duration // first restart delay ceiling; default DefaultMinBackoff
	MaxBackoff time.Duration // delay ceiling cap; default DefaultMaxBackoff
	Stable     time.Duration // uptime after which backoff resets; default DefaultStable
	Grace      time.Duration // wait between SIGTERM and kill; default DefaultGrace

	Stdout, Stderr io.Writer      // worker output; nil discards it
	Logger         *slog.Logger   // nil discards log lines
	Clock          Clock          // nil: the real clock
	Rand           func() float64 // uniform in [0, 1]; nil: math/rand/v2
	// Signals, if set, replaces the process signals (SIGINT, SIGTERM, SIGHUP)
	// Run would otherwise subscribe to with signal.Notify.
	Signals <-chan os.Signal
}

// ErrAlreadyRunning is returned by Run when the pid file names a live
// process.
var ErrAlreadyRunning = errors.New("daemon: already running")

// Run supervises the worker until ctx is done or a stop signal arrives, then
// stops the worker and returns nil. It returns an error when the
// configuration is invalid, the pid file cannot be taken or the worker
// cannot be started at all.
func (s *Supervisor) Run(ctx context.Context) error {
	if len(s.Command) == 0 || s.Command[0] == "" {
		return errors.New("daemon: Supervisor.Command is empty")
	}
	cfg := *s
	cfg.defaults()
	if cfg.MinBackoff > cfg.MaxBackoff {
		return fmt.Errorf("daemon: MinBackoff %s is above MaxBackoff %s", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.PidFile != "" {
		release, err := takePidFile(cfg.PidFile)
		if err != nil {
			return err
		}
		defer func() {
			if err := release(); err != nil {
				cfg.Logger.Warn("remove pid file", "file", cfg.PidFile, "err", err)
			}
		}()
	}
	sigs := cfg.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, notifySignals...)
		defer signal.Stop(ch)
		sigs = ch
	}
	bo := cfg.backoff()
	for {
		began := cfg.Clock.Now()
		bo.Connected(began)
		stopped, exitErr, err := cfg.runOnce(ctx, sigs)
		if err != nil || stopped {
			return err
		}
		ended := cfg.Clock.Now()
		bo.Disconnected(ended)
		up := ended.Sub(began)
		delay := bo.Next()
		cfg.Logger.Warn("worker exited, restarting", "err", exitErr, "uptime", up, "delay", delay)
		if cfg.sleep(ctx, sigs, delay) {
			return nil
		}
	}
}

func (s *Supervisor) defaults() {
	if s.MinBackoff <= 0 {
		s.MinBackoff = DefaultMinBackoff
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = max(DefaultMaxBackoff, s.MinBackoff)
	}
	if s.Stable <= 0 {
		s.Stable = DefaultStable
	}
	if s.Grace <= 0 {
		s.Grace = DefaultGrace
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Clock == nil {
		s.Clock = realClock{}
	}
}

// runOnce starts the worker and waits until it exits (stopped false, with its
// exit error) or until it was stopped on request (stopped true).
func (s *Supervisor) runOnce(ctx context.Context, sigs <-chan os.Signal) (stopped bool, exitErr, err error) {
	cmd := exec.Command(s.Command[0], s.Command[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = s.Env, s.Dir, s.Stdout, s.Stderr
	if err := cmd.Start(); err != nil {
		return false, nil, fmt.Errorf("daemon: start %s: %w", s.Command[0], err)
	}
	s.Logger.Info("worker started", "pid", cmd.Process.Pid, "command", s.Command)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			return false, err, nil
		case <-ctx.Done():
			s.stop(cmd, done, stopSignal)
			return true, nil, nil
		case sig := <-sigs:
			if isStop(sig) {
				s.stop(cmd, done, sig)
				return true, nil, nil
			}
			if err := cmd.Process.Signal(sig); err != nil {
				s.Logger.Warn("forward signal", "signal", sig, "pid", cmd.Process.Pid, "err", err)
			}
		}
	}
}

// stop asks the worker to exit with sig, kills it after the grace period and
// waits for it.
func (s *Supervisor) stop(cmd *exec.Cmd, done <-chan error, sig os.Signal) {
	s.Logger.Info("stopping worker", "pid", cmd.Process.Pid, "signal", sig, "grace", s.Grace)
	if err := terminate(cmd.Process, sig); err != nil {
		s.Logger.Warn("signal worker", "pid", cmd.Process.Pid, "err", err)
	}
	select {
	case err := <-done:
		s.Logger.Info("worker stopped", "err", err)
	case <-s.Clock.After(s.Grace):
		s.Logger.Warn("worker ignored stop, killing it", "pid", cmd.Process.Pid, "grace", s.Grace)
		_ = cmd.Process.Kill()
		<-done
	}
}

// sleep waits d before a restart; it reports true when a stop was requested
// meanwhile. Reload signals arriving while no worker runs are dropped.
func (s *Supervisor) sleep(ctx context.Context, sigs <-chan os.Signal, d time.Duration) bool {
	timer := s.Clock.After(d)
	for {
		select {
		case <-timer:
			return false
		case <-ctx.Done():
			return true
		case sig := <-sigs:
			if isStop(sig) {
				return true
			}
			s.Logger.Info("no worker to forward signal to", "signal", sig)
		}
	}
}

func isStop(sig os.Signal) bool {
	for _, s := range stopSignals {
		if sig == s {
			return true
		}
	}
	return false
}

// backoff returns the restart delays: full jitter over a ceiling growing
// from MinBackoff to MaxBackoff, back to MinBackoff after a stable run.
// The fields have their defaults.
func (s *Supervisor) backoff() *backoff.Backoff {
	return &backoff.Backoff{Initial: s.MinBackoff, Max: s.MaxBackoff, Stable: s.Stable, Rand: s.Rand}
}
