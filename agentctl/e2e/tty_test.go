//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/filetest"
)

// rateShown matches the progress bar's rate in whatever unit it picked: a
// fast machine moves 32 MiB at more than 1 GiB/s.
var rateShown = regexp.MustCompile(`\d (B|KiB|MiB|GiB|TiB)/s`)

// inTmux starts agentctl with args in a tmux session of its own (100×30)
// and returns the session and the file that receives agentctl's exit
// status when it ends.
func inTmux(t *testing.T, args ...string) (*tmux, string) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed for the terminal tests: apt-get install tmux")
	}
	x := &tmux{t: t, sock: fmt.Sprintf("agentctl-e2e-%d-%d", os.Getpid(), tmuxCount.Add(1))}
	status := filepath.Join(t.TempDir(), "status")
	var env []string
	for _, kv := range fleet.baseEnv(t) {
		if !strings.HasPrefix(kv, "TERM=") {
			env = append(env, "'"+kv+"'")
		}
	}
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	script := fmt.Sprintf("env -i TERM=xterm-256color %s %s %s; echo $? > %s; sleep 600", strings.Join(env, " "), bins.ctl, strings.Join(quoted, " "), status)
	x.run("new-session", "-d", "-s", "s", "-x", "100", "-y", "30", script)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", x.sock, "kill-server").Run() })
	return x, status
}

var tmuxCount atomic.Int32

func exitStatus(t *testing.T, x *tmux, status string) string {
	t.Helper()
	var b []byte
	if err := eventually.WaitTrue(60*time.Second, "agentctl's exit", func() bool { b, _ = os.ReadFile(status); return len(b) > 0 }); err != nil {
		t.Fatalf("%v; the screen:\n%s", err, x.screen())
	}
	return strings.TrimSpace(string(b))
}

// TestMetricsLive checks the top-like view on a terminal: it redraws with
// a new time, and Ctrl-C leaves it (the terminal's screen restored).
func TestMetricsLive(t *testing.T) {
	x, status := inTmux(t, "metrics", metricsAgent, "--interval", "500ms", "--top", "5")
	clock := regexp.MustCompile(`\b(\d\d:\d\d:\d\d)\n`)
	first := clock.FindStringSubmatch(x.waitScreen("the first frame", func(s string) bool {
		return strings.Contains(s, "every 500ms, Ctrl-C quits") && clock.MatchString(s)
	}))[1]
	x.waitScreen("a frame with a later time", func(s string) bool {
		m := clock.FindStringSubmatch(s)
		return m != nil && m[1] != first && strings.Contains(s, "PID")
	})
	x.run("send-keys", "-t", "s", "C-c")
	if code := exitStatus(t, x, status); code != "0" {
		t.Errorf("exit %s", code)
	}
	if s := x.screen(); strings.Contains(s, "Ctrl-C quits") {
		t.Errorf("the alternate screen was not left:\n%s", s)
	}
}

// TestProgressOnTerminal checks the progress shown on a terminal: cp's
// bar with rate and its summary line, and the progress line of tasks
// watch, updated as agents finish.
func TestProgressOnTerminal(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f.bin")
	filetest.Make(t, src, 64<<20, filetest.Noise)
	x, status := inTmux(t, "cp", src, "e2e-a1:"+dir+"/copy/")
	if code := exitStatus(t, x, status); code != "0" {
		t.Fatalf("cp exit %s:\n%s", code, x.screen())
	}
	s := x.screen()
	if !strings.Contains(s, "100%") || !rateShown.MatchString(s) || !strings.Contains(s, "1 file(s), 64.0MiB in") || !strings.Contains(s, "CRC-32C checked by the server") {
		t.Errorf("cp on a terminal:\n%s", s)
	}

	gate := filepath.Join(dir, "go")
	id := createTask(t, map[string]any{"selector": map[string]any{"labels": "e2e=yes"},
		"cmd": fmt.Sprintf(`test "$E2E_AGENT" = e2e-a1 || while [ ! -e %s ]; do sleep 0.05; done`, gate)})
	x, status = inTmux(t, "tasks", "watch", id)
	x.waitScreen("the progress line with one agent done", func(s string) bool {
		return strings.Contains(s, id+" running [") && strings.Contains(s, "1/3  ok 1") && strings.Contains(s, "running 2")
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, x, status); code != "0" {
		t.Errorf("watch exit %s", code)
	}
	s = x.screen()
	if !strings.Contains(s, "3/3  ok 3") || !regexp.MustCompile(`task \w+ done: 3 agent\(s\): 3 ok`).MatchString(s) {
		t.Errorf("watch on a terminal:\n%s", s)
	}
}
