package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/internal/sim"
	"github.com/agentfleet/agent-server/internal/testserver"
	"github.com/agentfleet/agent-server/servertest"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	opToken    = servertest.OperatorToken
	agentToken = servertest.AgentToken
)

// startServer runs the real server on a free loopback port with sim agents
// of each type in types (count each) connected; it returns the API base URL.
func startServer(t *testing.T, types map[string]int) string {
	t.Helper()
	cfg := testserver.Config("bench-foo-test", t.TempDir())
	cfg.API.RateLimit = 0
	srv := testserver.Start(t, cfg, server.Options{})
	simCtx, simCancel := context.WithCancel(context.Background())
	simDone := make(chan struct{})
	var sims []*sim.Sim
	for typ, n := range types {
		sims = append(sims, sim.New(sim.Config{URL: "ws://" + srv.Addr() + "/ws/agent", N: n, Type: typ, Token: agentToken}))
	}
	go func() {
		defer close(simDone)
		errc := make(chan error, len(sims))
		for _, s := range sims {
			go func() { errc <- s.Run(simCtx) }()
		}
		for range sims {
			<-errc
		}
	}()
	t.Cleanup(func() {
		simCancel()
		<-simDone
		http.DefaultClient.CloseIdleConnections() // countOnline's
	})
	want := 0
	for _, n := range types {
		want += n
	}
	eventually.NoError(t, "every sim agent connected", func() error {
		got := 0
		for _, s := range sims {
			got += int(s.Stats().Connected)
		}
		if got != want {
			return fmt.Errorf("%d of %d sim agents connected", got, want)
		}
		return nil
	})
	// The server records new agents in the store in the background: wait
	// until the API lists every one of them online, which is what the tool
	// reads (a sim agent counts as connected at its handshake, earlier).
	base := "http://" + srv.Addr()
	eventually.NoError(t, "the API to list every agent online", func() error {
		n, err := countOnline(base)
		if err == nil && n != want {
			err = fmt.Errorf("the API lists %d of %d agents online", n, want)
		}
		return err
	})
	return base
}

// countOnline returns the X-Total-Count of GET /api/agents?online=true.
func countOnline(base string) (int, error) {
	req, err := http.NewRequest("GET", base+"/api/agents?online=true&size=1", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return strconv.Atoi(resp.Header.Get("X-Total-Count"))
}

func TestRun(t *testing.T) {
	base := startServer(t, map[string]int{"example-agent": 12, "exec-agent": 3})
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(tokenFile, []byte(opToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		status     int
		wantOut    []string
		wantStderr string
	}{
		{"all answer", []string{"-api", base, "-token", opToken, "-n", "12", "-clients", "4"}, 0,
			[]string{"calls=12 ok=12 errors=0 ", "latency_ms p50="}, ""},
		{"token file, fewer than online", []string{"-api", base, "-token-file", tokenFile, "-n", "5"}, 0,
			[]string{"calls=5 ok=5 errors=0 "}, ""},
		{"more than online", []string{"-api", base, "-token", opToken, "-n", "20"}, 1,
			[]string{"calls=12 ok=12 "}, "only 12 of 20 agents online"},
		{"wrong type answers with an error", []string{"-api", base, "-token", opToken, "-n", "3", "-type", "exec-agent"}, 1,
			[]string{"calls=3 ok=0 errors=3 ", "error 3x: HTTP 424: "}, ""},
		{"bad token", []string{"-api", base, "-token", "nope", "-n", "1"}, 1,
			nil, "list agents page 1: HTTP 401: unauthorized: invalid token"},
		{"no agents wanted", []string{"-n", "0"}, 2, nil, "-n and -clients must be positive"},
		{"no clients", []string{"-clients", "0"}, 2, nil, "-n and -clients must be positive"},
		{"missing token file", []string{"-token-file", filepath.Join(t.TempDir(), "none")}, 2, nil, "no such file"},
		{"unknown flag", []string{"-bogus"}, 2, nil, "flag provided but not defined: -bogus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run(tc.args, &out, &errb); got != tc.status {
				t.Fatalf("status %d, want %d\nstdout: %s\nstderr: %s", got, tc.status, out.String(), errb.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			if tc.wantStderr != "" && !strings.Contains(errb.String(), tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, errb.String())
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3), 100, 3 * time.Millisecond},
		{ms(1, 2, 3), 0, 1 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
		}
	}
}
