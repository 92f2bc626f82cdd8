//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// TestAgentStoppedAndContinued: the exec-agent is frozen with SIGSTOP while
// a command writes 1.3 MB, long enough for the server to evict it as a
// dead peer (no frame for DeadAfter, 30 s); after SIGCONT it reconnects
// and the command's whole output and result arrive, once.
func TestAgentStoppedAndContinued(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the server's 30 s dead-peer eviction")
	}
	e := newEnv(t, envOptions{direct: true, drainTimeout: "-"})
	rr, r := e.run(runReq{Cmd: "seq 1 200000", Pipe: true, Timeout: 600}, true)
	if r.status != 200 || rr.PID <= 0 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	if err := e.agent.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	continued := false
	defer func() {
		if !continued {
			_ = e.agent.Cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	eventually.Within(t, 90*time.Second, "the stopped agent evicted", func() bool {
		r := e.api("GET", "/api/agents?online=true&size=1000", nil)
		var list []struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(r.Payload, &list)
		for _, a := range list {
			if a.ID == e.agentID {
				return false
			}
		}
		return true
	})
	if err := e.agent.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	continued = true
	e.waitOnline()
	s := e.waitDone(rr.PID, 120*time.Second)
	if s.Code != 0 || s.State != "ok" {
		t.Fatalf("status %+v, want ok, code 0", s)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/exec/%s/pty/%d?offset=0", e.url, e.agentID, rr.PID), nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := seqOutput(200000, "\n"); string(got) != string(want) {
		t.Fatalf("output: %d bytes, want %d", len(got), len(want))
	}
}
