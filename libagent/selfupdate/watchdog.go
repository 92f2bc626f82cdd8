package selfupdate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"
)

// StartWatchdog starts the watchdog of the plan at base from the previous
// binary (known to work): "<prev> upgrade-watchdog --plan <base>.upgrade",
// outliving the agent, its output in <base>.upgrade.log. name is the
// agent's (systemd unit names).
func StartWatchdog(prev, base, name string) error {
	log, err := os.OpenFile(base+".upgrade.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("watchdog log: %w", err)
	}
	defer log.Close()
	return startWatchdog(prev, []string{"upgrade-watchdog", "--plan", PlanPath(base)}, name, log)
}

// WatchPoll is how often the watchdog looks at the plan.
const WatchPoll = 250 * time.Millisecond

// Watch is the watchdog of the plan at base: it waits for the new binary
// to confirm (the pending file disappears) until the plan's deadline; then
// it claims the plan, stops the new binary when it runs, puts the previous
// binary back and, in exec mode, starts it (in exit mode the service
// manager does). It returns nil when the upgrade was confirmed, and an
// error saying what it did otherwise.
func Watch(ctx context.Context, base string, log *slog.Logger) error {
	p, err := readPlan(pendingPath(base))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // decided already
	}
	if err != nil {
		return err
	}
	log.Info("upgrade watchdog: waiting for the new binary", "task", p.Task, "deadline", p.Deadline)
	t := time.NewTicker(WatchPoll)
	defer t.Stop()
	for time.Now().Before(p.Deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if _, err := os.Stat(pendingPath(base)); errors.Is(err, fs.ErrNotExist) {
			log.Info("upgrade watchdog: the new binary confirmed", "task", p.Task)
			return nil
		}
	}
	if err := os.Rename(pendingPath(base), rolledBackPath(base)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // confirmed at the last moment
		}
		return fmt.Errorf("claim the plan: %w", err)
	}
	p.Reason = fmt.Sprintf("the new binary did not connect and stay up %s within the deadline; rolled back to %s", p.Stay, p.From)
	log.Warn("upgrade watchdog: rolling back", "task", p.Task, "reason", p.Reason)
	pid := readPID(base)
	if p.Restart == RestartExec && pid == 0 {
		pid = p.PID // exec kept the pid
	}
	if pid > 0 && pid != os.Getpid() {
		stopProcess(pid)
	}
	if err := Rollback(p.Exe, p.Prev); err != nil {
		p.Reason += "; " + err.Error()
		_ = writeRecord(rolledBackPath(base), p)
		return err
	}
	_ = writeRecord(rolledBackPath(base), p)
	if p.Restart == RestartExec {
		if err := startDetached(p.Exe, p.Args, p.Dir, nil); err != nil {
			return fmt.Errorf("rolled back; start %s: %w", p.Exe, err)
		}
	}
	return errors.New(p.Reason)
}
