package libagent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentfleet/libagent/protocol"
	"github.com/agentfleet/libagent/selfupdate"
)

// Upgrade is basic.upgrade.*: the trust and restart settings of
// self-update (docs/upgrade.md).
type Upgrade struct {
	// PublicKey lists the release keys (base64 ed25519, from
	// `make release-key`) a new binary's signature must verify with.
	PublicKey []string `kv:"public_key"`
	// AllowUnsigned accepts binaries without a signature (labs only).
	AllowUnsigned bool `kv:"allow_unsigned"`
	// Restart is auto, exit or exec (selfupdate.Restart*).
	Restart string `kv:"restart"`
}

func (u *Upgrade) validate() error {
	switch u.Restart {
	case "", selfupdate.RestartAuto, selfupdate.RestartExit, selfupdate.RestartExec:
	default:
		return fmt.Errorf("%w: basic.upgrade.restart %q: want auto, exit or exec", ErrInvalidConfig, u.Restart)
	}
	for _, k := range u.PublicKey {
		if _, err := selfupdate.ParsePublicKey(k); err != nil {
			return fmt.Errorf("%w: basic.upgrade.public_key: %v", ErrInvalidConfig, err)
		}
	}
	return nil
}

func (u *Upgrade) keys() []ed25519.PublicKey {
	var ks []ed25519.PublicKey
	for _, s := range u.PublicKey {
		if k, err := selfupdate.ParsePublicKey(s); err == nil {
			ks = append(ks, k)
		}
	}
	return ks
}

// ErrRestart is returned by Run when the agent stops to restart on a new
// binary (Main then exits with selfupdate.ExitRestart or re-executes).
var ErrRestart = errors.New("restart on the new binary")

// restartError carries how to restart.
type restartError struct{ mode, exe string }

func (e *restartError) Error() string     { return ErrRestart.Error() + " (" + e.mode + ")" }
func (e *restartError) Is(err error) bool { return err == ErrRestart }

// Limits of an upgrade request.
const (
	maxUpgradeDeadline     = 24 * time.Hour
	defaultUpgradeDeadline = 2 * time.Minute
	defaultUpgradeStay     = 10 * time.Second
)

// upgradeBase is the base of the plan files (the state path without its
// extension); "" when the agent keeps no state, and cannot self-update.
func (rt *Runtime) upgradeBase() string {
	p := rt.opts.StatePath
	if p == "" {
		return ""
	}
	return strings.TrimSuffix(p, filepath.Ext(p))
}

// restartMode resolves basic.upgrade.restart.
func (rt *Runtime) restartMode() string {
	switch m := rt.basic.Upgrade.Restart; m {
	case selfupdate.RestartExit, selfupdate.RestartExec:
		return m
	}
	if selfupdate.Managed() {
		return selfupdate.RestartExit
	}
	return selfupdate.RestartExec
}

// handleUpgrade fetches, checks and swaps in a new binary, starts the
// watchdog, answers and restarts. Nothing is swapped unless every check
// passed.
func (rt *Runtime) handleUpgrade(ctx context.Context, req *protocol.Msg, w Replier) error {
	u := req.Upgrade()
	if u == nil {
		return errors.New("upgrade: no payload")
	}
	refuse := func(err error) error {
		rt.log.Warn("upgrade refused", "task", u.Task, "err", err)
		kind := protocol.KindInvalid
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeUpgradeRep, TID: req.TID, Payload: &protocol.UpgradeRep{Msg: err.Error(), From: rt.agent.Version, Kind: kind}})
	}
	base := rt.upgradeBase()
	if base == "" {
		return refuse(errors.New("upgrade: the agent keeps no state file"))
	}
	if !rt.upgrading.CompareAndSwap(false, true) {
		return refuse(errors.New("upgrade: another upgrade is in progress"))
	}
	swapped := false
	defer func() {
		if !swapped {
			rt.upgrading.Store(false)
		}
	}()
	deadline := time.Duration(u.Deadline) * time.Second
	stay := time.Duration(u.Stay) * time.Second
	if deadline <= 0 {
		deadline = defaultUpgradeDeadline
	}
	if stay <= 0 {
		stay = defaultUpgradeStay
	}
	if deadline > maxUpgradeDeadline || stay >= deadline {
		return refuse(fmt.Errorf("upgrade: deadline %s and stay %s: want stay < deadline ≤ %s", deadline, stay, maxUpgradeDeadline))
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return refuse(fmt.Errorf("upgrade: own executable: %w", err))
	}
	pol := selfupdate.Policy{Keys: rt.basic.Upgrade.keys(), AllowUnsigned: rt.basic.Upgrade.AllowUnsigned}
	staged, err := selfupdate.Stage(exe, selfupdate.Want{SHA256: u.SHA256, Size: u.Size, Sig: u.Sig}, pol, func(dst io.Writer) error {
		_, err := rt.Fetch(ctx, u.URI, u.Token, dst)
		return err
	})
	if err != nil {
		return refuse(fmt.Errorf("upgrade: %w", err))
	}
	prev, err := selfupdate.Swap(exe, staged)
	if err != nil {
		_ = os.Remove(staged)
		return refuse(fmt.Errorf("upgrade: %w", err))
	}
	mode := rt.restartMode()
	wd, _ := os.Getwd()
	plan := selfupdate.Plan{
		Task: u.Task, From: rt.agent.Version, SHA256: strings.ToLower(u.SHA256), Exe: exe, Prev: prev,
		Deadline: time.Now().Add(deadline), Stay: stay, Restart: mode, PID: os.Getpid(), Args: os.Args[1:], Dir: wd,
	}
	undo := func(err error) error {
		selfupdate.RemovePlan(base)
		if rerr := selfupdate.Rollback(exe, prev); rerr != nil {
			err = fmt.Errorf("%w; and the old binary could not be put back: %v", err, rerr)
		}
		return refuse(fmt.Errorf("upgrade: %w", err))
	}
	if err := selfupdate.WritePlan(base, plan); err != nil {
		return undo(err)
	}
	if err := selfupdate.StartWatchdog(prev, base, rt.agent.Name); err != nil {
		return undo(fmt.Errorf("start the watchdog: %w", err))
	}
	swapped = true
	rt.log.Info("upgrade: new binary in place, restarting", "task", u.Task, "sha256", plan.SHA256, "mode", mode, "deadline", plan.Deadline)
	sent := rt.st.outPackets.Load()
	err = w.Reply(ctx, &protocol.Msg{Type: protocol.TypeUpgradeRep, TID: req.TID, Payload: &protocol.UpgradeRep{OK: true, From: rt.agent.Version}})
	rt.drain(sent, 2*time.Second)
	rt.stopRun(&restartError{mode: mode, exe: exe})
	return err
}

// drain waits until the send queues are empty and a frame was written
// since the count sent (the reply is on the wire), at most d.
func (rt *Runtime) drain(sent uint64, d time.Duration) {
	end := time.Now().Add(d)
	for (rt.st.queued.Load() > 0 || rt.st.outPackets.Load() == sent) && time.Now().Before(end) {
		time.Sleep(20 * time.Millisecond)
	}
}

// confirmUpgrade runs in the new binary while its plan is pending: once
// the agent has been connected for the plan's stay without a break, it
// claims the plan (the watchdog then stands down).
func (rt *Runtime) confirmUpgrade(ctx context.Context, p selfupdate.Plan) {
	base := rt.upgradeBase()
	for ctx.Err() == nil && time.Now().Before(p.Deadline) {
		if err := rt.WaitConnected(ctx); err != nil {
			return
		}
		s := rt.current()
		if s == nil {
			continue
		}
		t := time.NewTimer(p.Stay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			continue
		case <-t.C:
		}
		if err := selfupdate.Confirm(base); err != nil {
			rt.log.Error("upgrade: too late to confirm; the watchdog rolls back", "task", p.Task, "err", err)
			return
		}
		rt.log.Info("upgrade confirmed", "task", p.Task, "from", p.From, "version", rt.agent.Version)
		return
	}
}

// upgradeStartup logs the outcome of the last upgrade and returns the plan
// this binary must confirm, if any.
func (rt *Runtime) upgradeStartup() *selfupdate.Plan {
	base := rt.upgradeBase()
	if base == "" {
		return nil
	}
	if p, rolledBack, ok := selfupdate.Outcome(base); ok {
		if rolledBack {
			rt.log.Error("upgrade rolled back", "task", p.Task, "reason", p.Reason)
		} else {
			rt.log.Info("upgrade done", "task", p.Task, "from", p.From)
		}
	}
	if p, ok := selfupdate.Pending(base, os.Getpid()); ok {
		return &p
	}
	return nil
}

// stopRun ends Run with err as the cause.
func (rt *Runtime) stopRun(err error) {
	if f := rt.cancelRun; f != nil {
		f(err)
	}
}
