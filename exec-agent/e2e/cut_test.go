//go:build linux

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestCutOutputIsReported: a background process that keeps the pipe open
// and stays silent is let go of after exec.drain_timeout — and the result
// says so: state and code are the main process's, msg names the process,
// the server counts it. Never a silent success.
func TestCutOutputIsReported(t *testing.T) {
	e := newEnv(t, envOptions{})
	mark := fmt.Sprintf("cut-holder-%d", e.port)
	t.Cleanup(func() {
		for _, pid := range procsMatching(t, mark) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	before := e.metric(t, "agentserver_exec_agent_output_cut_total")
	rr, r := e.run(runReq{Cmd: "setsid sh -c 'sleep 300; : " + mark + "' & echo bye", Pipe: true}, false)
	if r.status != 200 || rr.Result == nil {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	res := rr.Result
	if res.State != "ok" || res.Code != 0 || string(res.Data) != "bye\n" {
		t.Fatalf("state %s code %d data %q", res.State, res.Code, res.Data)
	}
	holders := procsMatching(t, mark)
	if len(holders) == 0 {
		t.Fatal("the background process is gone: nothing held the pipe")
	}
	if !strings.Contains(res.Msg, "output cut") || !strings.Contains(res.Msg, strconv.Itoa(holders[0])) {
		t.Errorf("msg %q: want the cut and pid %d", res.Msg, holders[0])
	}
	if got := e.metric(t, "agentserver_exec_agent_output_cut_total"); got != before+1 {
		t.Errorf("agentserver_exec_agent_output_cut_total %v, want %v", got, before+1)
	}
}

// metric reads a metric without labels from the server's /metrics.
func (e *env) metric(t *testing.T, name string) float64 {
	t.Helper()
	r := e.api("GET", "/metrics", nil)
	for line := range strings.SplitSeq(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in /metrics", name)
	return 0
}
