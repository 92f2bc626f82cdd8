//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// shellRoute reports whether the server has the shell route: without an
// Upgrade header a server that has it refuses the request otherwise than
// with 404 "not found: route".
func shellRoute(t *testing.T) bool {
	req, _ := http.NewRequest("GET", fleet.url+"/api/exec/e2e-a1/shell?cols=80&rows=24", nil)
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := fleet.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 512)
	n, _ := resp.Body.Read(b)
	return !(resp.StatusCode == 404 && strings.Contains(string(b[:n]), "not found: route"))
}

// tmux drives one tmux server of its own.
type tmux struct {
	t    *testing.T
	sock string
}

func (x *tmux) run(args ...string) string {
	x.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", x.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (x *tmux) screen() string { return x.run("capture-pane", "-p", "-t", "s") }

func (x *tmux) waitScreen(what string, cond func(string) bool) string {
	x.t.Helper()
	var s string
	if err := eventually.WaitTrue(60*time.Second, what, func() bool { s = x.screen(); return cond(s) }); err != nil {
		x.t.Fatalf("%v; the screen:\n%s", err, s)
	}
	return s
}

func (x *tmux) typeLine(s string) {
	x.run("send-keys", "-t", "s", "-l", s)
	x.run("send-keys", "-t", "s", "Enter")
}

// sleeps returns the pids of "sleep 3017" processes.
func sleeps(t *testing.T) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, d := range dirs {
		if b, err := os.ReadFile(d); err == nil && string(b) == "sleep\x003017\x00" {
			out = append(out, d)
		}
	}
	return out
}

// TestShellTmux drives `agentctl shell` in a real terminal (tmux): typing,
// reading the screen, a window resize seen by the remote terminal, Ctrl-C
// reaching the remote command, and the exit code passed through. It needs
// the server's GET /api/exec/{id}/shell: without it the test fails in CI
// (CI=true or REQUIRE_SHELL=1) and is skipped, saying so, elsewhere.
func TestShellTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed for the shell test: apt-get install tmux")
	}
	if !shellRoute(t) {
		msg := "agent-server has no GET /api/exec/{id}/shell route yet: agentctl shell is not tested end to end"
		if os.Getenv("CI") == "true" || os.Getenv("REQUIRE_SHELL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	x := &tmux{t: t, sock: fmt.Sprintf("agentctl-e2e-%d", os.Getpid())}
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	var env []string
	for _, kv := range fleet.baseEnv(t) {
		env = append(env, "'"+kv+"'")
	}
	script := fmt.Sprintf("env -i %s %s shell e2e-a1 -- /bin/sh; echo $? > %s; sleep 600", strings.Join(env, " "), bins.ctl, status)
	x.run("new-session", "-d", "-s", "s", "-x", "100", "-y", "30", script)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", x.sock, "kill-server").Run() })
	x.run("set-option", "-t", "s", "status", "off")

	x.typeLine("echo hello-$((6*7))")
	x.waitScreen("the remote shell's answer", func(s string) bool { return strings.Contains(s, "hello-42") })

	size := func() string {
		return strings.TrimSpace(x.run("display-message", "-p", "-t", "s", "#{pane_height} #{pane_width}"))
	}
	want := size()
	x.typeLine("stty size")
	x.waitScreen("stty size "+want, func(s string) bool { return strings.Contains(s, "\n"+want+"\n") || strings.HasPrefix(s, want+"\n") })

	x.run("resize-window", "-t", "s", "-x", "120", "-y", "40")
	if want = size(); want != "40 120" {
		t.Fatalf("tmux pane is %s after the resize", want)
	}
	x.run("send-keys", "-t", "s", "clear", "Enter")
	x.typeLine("stty size")
	x.waitScreen("stty size after the resize", func(s string) bool { return strings.Contains(s, "40 120") })

	// Ctrl-C goes to the remote terminal, not to agentctl: the remote
	// sleep (a unique length, to find it in /proc) dies, the shell stays.
	// The screen shows typed commands too: the shell's arithmetic tells
	// output from input.
	x.typeLine("sleep 3017; echo X-$((40+2))")
	if err := eventually.WaitTrue(60*time.Second, "the remote sleep", func() bool { return len(sleeps(t)) > 0 }); err != nil {
		t.Fatalf("%v; the screen:\n%s", err, x.screen())
	}
	x.run("send-keys", "-t", "s", "C-c")
	if err := eventually.WaitTrue(60*time.Second, "the sleep gone", func() bool { return len(sleeps(t)) == 0 }); err != nil {
		t.Fatal(err)
	}
	x.typeLine("echo after-$((1+2))")
	s := x.waitScreen("the shell after Ctrl-C", func(s string) bool { return strings.Contains(s, "after-3\n") })
	if strings.Contains(s, "X-42") {
		t.Errorf("the command after the interrupted sleep ran:\n%s", s)
	}

	x.typeLine("exit 3")
	if err := eventually.WaitTrue(60*time.Second, "agentctl's exit status", func() bool { b, _ := os.ReadFile(status); return len(b) > 0 }); err != nil {
		t.Fatalf("%v; the screen:\n%s", err, x.screen())
	}
	if b, _ := os.ReadFile(status); strings.TrimSpace(string(b)) != "3" {
		t.Errorf("agentctl shell exited %s, want the remote 3", b)
	}
}

// TestShellPiped sends a script to `agentctl shell` on stdin (not a
// terminal): it runs, then the end of input (Ctrl-D) ends the shell,
// whose exit code agentctl returns.
func TestShellPiped(t *testing.T) {
	if !shellRoute(t) {
		msg := "agent-server has no GET /api/exec/{id}/shell route yet: agentctl shell is not tested end to end"
		if os.Getenv("CI") == "true" || os.Getenv("REQUIRE_SHELL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r := fleet.ctl(t, ctlOpts{stdin: strings.NewReader("echo piped-$((2+3))\nexit 4\n")}, "shell", "e2e-a2", "--", "/bin/sh")
	if r.code != 4 || !strings.Contains(r.out, "piped-5") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", r.code, r.out, r.err)
	}
	r = fleet.ctl(t, ctlOpts{stdin: strings.NewReader("echo eof\n")}, "shell", "e2e-a2", "--", "/bin/sh")
	if r.code != 0 || !strings.Contains(r.out, "eof") {
		t.Errorf("Ctrl-D: exit %d\nstdout %q\nstderr %q", r.code, r.out, r.err)
	}
	r = fleet.ctl(t, ctlOpts{}, "shell", "nosuch")
	if r.code != 1 || !strings.Contains(r.err, "not found: agent") {
		t.Errorf("unknown agent: %d %s", r.code, r.err)
	}
}
