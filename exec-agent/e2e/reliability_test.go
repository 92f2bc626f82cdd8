//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReliability is `make reliability` (.ci/reliability, which also starts
// one busy loop per core beside it): RELIABILITY_RUNS (default 200) runs of
// `seq 1 200000` through the real agent-server and exec-agent on loopback,
// spread evenly over pipe and pty, sync and async, and fleet tasks, with
// RELIABILITY_PARALLEL (default 4) at once. Every run's output must be
// exactly what seq prints (1,288,895 bytes; on a pty each "\n" is "\r\n").
// The agent runs with its shipped exec.drain_timeout. Skipped unless
// RELIABILITY=1.
func TestReliability(t *testing.T) {
	if os.Getenv("RELIABILITY") != "1" {
		t.Skip("RELIABILITY=1 runs it (make reliability)")
	}
	runs := envInt(t, "RELIABILITY_RUNS", 200)
	par := envInt(t, "RELIABILITY_PARALLEL", 4)
	e := newEnv(t, envOptions{direct: true, logLevel: "info", drainTimeout: "-"})

	lf := seqOutput(200000, "\n")
	crlf := seqOutput(200000, "\r\n")
	if len(lf) != 1288895 {
		t.Fatalf("seq 1 200000 is %d bytes, want 1288895", len(lf))
	}
	type kind struct {
		name  string
		pipe  bool
		async bool
		fleet bool
	}
	kinds := []kind{
		{name: "sync pipe", pipe: true},
		{name: "sync pty"},
		{name: "async pipe", pipe: true, async: true},
		{name: "async pty", async: true},
		{name: "fleet", fleet: true},
	}
	var (
		mu       sync.Mutex
		failures []string
		perKind  = map[string]int{}
		lost     atomic.Int64
		total    atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
		start    = time.Now()
	)
	for range par {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= runs {
					return
				}
				k := kinds[i%len(kinds)]
				var out []byte
				var err error
				switch {
				case k.fleet:
					out, err = reliabilityFleet(e)
				default:
					out, err = reliabilityExec(e, k.pipe, k.async)
				}
				want := lf
				if !k.pipe && (!k.fleet || bytes.HasPrefix(out, []byte("1\r\n"))) {
					want = crlf
				}
				total.Add(int64(len(out)))
				if d := len(want) - len(out); d > 0 && out != nil {
					lost.Add(int64(d))
				}
				mu.Lock()
				perKind[k.name]++
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("run %d (%s): %v", i, k.name, err))
				case !bytes.Equal(out, want):
					at := 0
					for at < len(out) && at < len(want) && out[at] == want[at] {
						at++
					}
					failures = append(failures, fmt.Sprintf("run %d (%s): %d bytes, want %d; first difference at byte %d", i, k.name, len(out), len(want), at))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(start).Round(time.Second)
	fmt.Printf("reliability: %d runs %v in %s, %d at once; bytes received %d, bytes lost %d, failures %d\n",
		runs, perKind, took, par, total.Load(), lost.Load(), len(failures))
	for _, f := range failures {
		t.Error(f)
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func seqOutput(n int, eol string) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteString(eol)
	}
	return b.Bytes()
}

// reliabilityExec runs seq through POST /api/exec/{id}/run; async: with
// result:false, then reads the whole output through /pty/{pid}?offset=
// once the task is done.
func reliabilityExec(e *env, pipe, async bool) ([]byte, error) {
	req := runReq{Cmd: "seq 1 200000", Pipe: pipe, Timeout: 300}
	if async {
		f := false
		req.Result = &f
	}
	r, err := apiCall(e, "POST", "/api/exec/"+e.agentID+"/run", req)
	if err != nil {
		return nil, err
	}
	var rr runReply
	if r.status != 200 || json.Unmarshal(r.Payload, &rr) != nil {
		return nil, fmt.Errorf("run: %d %s", r.status, trunc(r.body))
	}
	if !async {
		res := rr.Result
		if res == nil || res.Running || res.Code != 0 || res.Dropped != 0 {
			return nil, fmt.Errorf("run result %+v", res)
		}
		return res.Data, nil
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r, err := apiCall(e, "GET", fmt.Sprintf("/api/exec/%s/status/%d", e.agentID, rr.PID), nil)
		if err != nil {
			return nil, err
		}
		var s status
		if r.status == 200 && json.Unmarshal(r.Payload, &s) == nil && s.Done {
			if s.Code != 0 || s.State != "ok" {
				return nil, fmt.Errorf("status %+v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pid %d not done after 5 minutes: %d %s", rr.PID, r.status, trunc(r.body))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out []byte
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/exec/%s/pty/%d?offset=%d", e.url, e.agentID, rr.PID, len(out)), nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := e.client.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("pty: %d %s", resp.StatusCode, trunc(b))
		}
		out = append(out, b...)
		if len(b) == 0 {
			if resp.Header.Get("X-Done") != "true" {
				return nil, fmt.Errorf("pty: X-Done %q after the status said done", resp.Header.Get("X-Done"))
			}
			return out, nil
		}
	}
}

// reliabilityFleet runs seq as a fleet task on the one agent and reads
// the stored output.
func reliabilityFleet(e *env) ([]byte, error) {
	r, err := apiCall(e, "POST", "/api/tasks", map[string]any{"selector": map[string]any{"ids": []string{e.agentID}}, "cmd": "seq 1 200000", "timeout": 300})
	if err != nil {
		return nil, err
	}
	var p struct{ ID string }
	if r.status != 200 || json.Unmarshal(r.Payload, &p) != nil || p.ID == "" {
		return nil, fmt.Errorf("create task: %d %s", r.status, trunc(r.body))
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r, err := apiCall(e, "GET", "/api/tasks/"+p.ID, nil)
		if err != nil {
			return nil, err
		}
		var v struct {
			State  string `json:"state"`
			Agents []struct {
				State    string `json:"state"`
				ExitCode int    `json:"exit_code"`
				Msg      string `json:"msg"`
				// NotStored: bytes beyond the store's cap (dropped are only
				// those between output_head and output_tail).
				NotStored   int64 `json:"not_stored"`
				OutputBytes int64 `json:"output_bytes"`
			} `json:"agents"`
		}
		if r.status != 200 || json.Unmarshal(r.Payload, &v) != nil {
			return nil, fmt.Errorf("get task: %d %s", r.status, trunc(r.body))
		}
		if v.State == "done" || v.State == "failed" || v.State == "cancelled" {
			if v.State != "done" || len(v.Agents) != 1 || v.Agents[0].State != "ok" || v.Agents[0].NotStored != 0 {
				return nil, fmt.Errorf("task %s %s: agents %+v", p.ID, v.State, v.Agents)
			}
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("task %s not done after 5 minutes: %s", p.ID, trunc(r.Payload))
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", e.url+"/api/tasks/"+p.ID+"/agents/"+e.agentID+"/output", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("output: %d %s", resp.StatusCode, trunc(b))
	}
	if n := resp.Header.Get("X-Output-Bytes"); n != strconv.Itoa(len(b)) {
		return b, fmt.Errorf("output: X-Output-Bytes %s, body %d bytes", n, len(b))
	}
	return b, nil
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
