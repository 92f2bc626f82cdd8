//go:build linux

package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// TestRunOne runs commands on one agent: exact output (stdout and stderr,
// no terminal), the remote exit code passed through, -o json.
func TestRunOne(t *testing.T) {
	r := fleet.ctl(t, ctlOpts{}, "run", "e2e-a1", "--", `printf 'out\n'; printf 'err\n' >&2; printf '%s' "$E2E_AGENT"; exit 7`)
	if r.code != 7 {
		t.Errorf("exit %d, want the remote 7 (%s)", r.code, r.err)
	}
	if r.out != "out\nerr\ne2e-a1" {
		t.Errorf("output %q", r.out)
	}
	// Arguments are quoted by the agent: no shell expansion of them.
	r = fleet.ok(t, "run", "e2e-a1", "--", "printf", "%s|", "a b", "$HOME", "*")
	if r.out != "a b|$HOME|*|" {
		t.Errorf("args: %q", r.out)
	}
	// Output as it comes, many polls' worth, in order.
	r = fleet.ok(t, "run", "e2e-a2", "--", "seq 1 20000")
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); len(lines) != 20000 || lines[19999] != "20000" {
		t.Errorf("seq: %d lines", len(lines))
	}
	// The command's time limit: 124, as timeout(1) does. (The command
	// ignores SIGTERM: the server reports timed_out only for a command
	// that had to be killed, exit 137.)
	r = fleet.ctl(t, ctlOpts{}, "run", "e2e-a3", "--timeout", "1s", "--", "trap '' TERM; sleep 60")
	if r.code != 124 || !strings.Contains(r.err, "e2e-a3: the command hit its time limit of 1s — raise --timeout") {
		t.Errorf("--timeout: exit %d %s", r.code, r.err)
	}
	r = fleet.ok(t, "run", "e2e-a1", "-t", "--", "echo tty; tty -s && echo yes")
	if r.out != "tty\r\nyes\r\n" {
		t.Errorf("-t: %q", r.out)
	}
	r = fleet.ok(t, "run", "e2e-a1", "-w", "/tmp", "-e", "GREETING=hi there", "-o", "json", "--", `echo "$GREETING from $(pwd)"`)
	checkShape(t, "run_one", r.out)
	var v struct {
		State  string `json:"state"`
		Agents []struct {
			Output   string `json:"output"`
			ExitCode int    `json:"exit_code"`
		} `json:"agents"`
	}
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || v.State != "done" || len(v.Agents) != 1 || v.Agents[0].Output != "hi there from /tmp\n" {
		t.Errorf("json: %+v %v\n%s", v, err, r.out)
	}
}

// TestRunFleetOneFailure runs on three agents, one of which fails: every
// agent's output prefixed, the table, exit 1; --summary groups the
// identical outputs; -o json has each agent.
func TestRunFleetOneFailure(t *testing.T) {
	cmd := `echo "hello from $E2E_AGENT"; echo same; test "$E2E_AGENT" != e2e-a3 || { echo boom; exit 3; }`
	r := fleet.ctl(t, ctlOpts{}, "run", "e2e-a1", "e2e-a2", "e2e-a3", "--", cmd)
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (one agent failed)", r.code)
	}
	for _, want := range []string{"e2e-a1 | hello from e2e-a1\n", "e2e-a2 | same\n", "e2e-a3 | boom\n"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.out)
		}
	}
	if n := strings.Count(r.out, "\n"); n != 7 {
		t.Errorf("%d output lines, want 7:\n%s", n, r.out)
	}
	for _, re := range []string{`(?m)^task \w+: 3 agent\(s\)$`, `(?m)^e2e-a3\s+failed\s+3\s`, `(?m)^e2e-a1\s+ok\s+0\s`, `task \w+ done: 3 agent\(s\): 2 ok, 1 failed`} {
		if !regexp.MustCompile(re).MatchString(r.err) {
			t.Errorf("stderr does not match %s:\n%s", re, r.err)
		}
	}

	r = fleet.ctl(t, ctlOpts{}, "run", "-l", "e2e=yes", "--summary", "--", `echo same; test "$E2E_AGENT" != e2e-a3 || exit 3`)
	if r.code != 1 {
		t.Errorf("--summary: exit %d", r.code)
	}
	want := "== 2 agents ok (exit 0): e2e-a1, e2e-a2\n   same\n== 1 agent failed (exit 3): e2e-a3\n   same\n"
	if r.out != want {
		t.Errorf("--summary:\n%s\nwant:\n%s", r.out, want)
	}

	r = fleet.ctl(t, ctlOpts{}, "run", "-l", "e2e=yes", "--concurrency", "1", "-o", "json", "--", cmd)
	if r.code != 1 {
		t.Errorf("-o json: exit %d", r.code)
	}
	checkShape(t, "run_fleet", r.out)
	var v struct {
		State   string `json:"state"`
		Summary struct {
			Total, OK, Failed int
		} `json:"summary"`
		Agents []struct {
			Agent    string `json:"agent"`
			State    string `json:"state"`
			ExitCode int    `json:"exit_code"`
			Output   string `json:"output"`
		} `json:"agents"`
	}
	if err := json.Unmarshal([]byte(r.out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Agents) != 3 || v.Summary.Total != 3 || v.Summary.OK != 2 || v.Summary.Failed != 1 || v.Agents[2].ExitCode != 3 || v.Agents[2].Output != "hello from e2e-a3\nsame\nboom\n" {
		t.Errorf("json: %+v", v)
	}

	// --max-errors 0 with one agent at a time: the failure stops the rest.
	r = fleet.ctl(t, ctlOpts{}, "run", "e2e-a3", "e2e-a1", "e2e-a2", "--concurrency", "1", "--max-errors", "0", "--", cmd)
	if r.code != 1 || !strings.Contains(r.err, "skipped") {
		t.Errorf("--max-errors 0: exit %d\n%s", r.code, r.err)
	}
}

// TestRunCtrlC interrupts runs with SIGINT: a fleet run asks the server to
// cancel the task (its commands are killed, exit 130); a one-agent run
// kills its command.
func TestRunCtrlC(t *testing.T) {
	s := fleet.start(t, ctlOpts{}, "run", "-l", "e2e=yes", "--", "echo started; sleep 300")
	var taskID string
	eventually.Within(t, 60*time.Second, "three agents running the command", func() bool {
		m := regexp.MustCompile(`task (\w+): 3 agent`).FindStringSubmatch(s.err.String())
		if m == nil {
			return false
		}
		taskID = m[1]
		return strings.Count(s.out.String(), "| started") == 3
	})
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r := s.wait(t, 90*time.Second)
	if r.code != 130 {
		t.Errorf("exit %d, want 130\n%s", r.code, r.err)
	}
	if !strings.Contains(r.err, "cancelling task "+taskID) {
		t.Errorf("stderr:\n%s", r.err)
	}
	var task struct {
		State  string `json:"state"`
		Agents []struct {
			State string `json:"state"`
			Msg   string `json:"msg"`
		} `json:"agents"`
	}
	if err := fleet.api("GET", "/api/tasks/"+taskID, nil, &task); err != nil {
		t.Fatal(err)
	}
	if task.State != "cancelled" || len(task.Agents) != 3 {
		t.Fatalf("task: %+v", task)
	}
	for _, a := range task.Agents {
		if a.State != "failed" || !strings.Contains(a.Msg, "killed") {
			t.Errorf("agent result %+v, want killed", a)
		}
	}

	// One agent: the command is killed.
	s = fleet.start(t, ctlOpts{}, "run", "e2e-a2", "--", "echo started; sleep 300")
	eventually.Within(t, 60*time.Second, "the command's output", func() bool { return strings.Contains(s.out.String(), "started") })
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r = s.wait(t, 60*time.Second)
	if r.code != 130 || !strings.Contains(r.err, "killing the command on e2e-a2") {
		t.Errorf("one agent: exit %d\n%s", r.code, r.err)
	}
}
