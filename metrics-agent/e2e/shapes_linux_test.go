package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

// The server takes the pushes of a 1.x metrics-agent (one category per
// hm_dynamic_rep) as well as ours (several per message). A libagent agent
// named metrics-agent sends hand-made payloads of both shapes.
func TestPushShapes(t *testing.T) {
	srv := startServer(t, nil)
	cfg := &struct {
		Basic libagent.Basic `kv:"basic"`
	}{Basic: libagent.DefaultBasic()}
	cfg.Basic.Server, cfg.Basic.Token, cfg.Basic.Monitor.Enabled = srv.addr, agentToken, false
	rtc := make(chan *libagent.Runtime, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- libagent.Run(ctx, &libagent.Agent{Name: "metrics-agent", Version: "1.2.4", Config: cfg,
			Setup: func(rt *libagent.Runtime) error { rtc <- rt; return nil }},
			libagent.Options{Logger: slog.New(slog.DiscardHandler), SkipLimits: true})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	rt := <-rtc
	eventually.Within(t, 15*time.Second, "the agent connected", rt.Connected)
	push := func(m *protocol.Msg) {
		t.Helper()
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		defer pcancel()
		if err := rt.Push(pctx, m); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	dyn := func(d protocol.HMDynamicRep) *protocol.Msg {
		d.Begin, d.End = now, now
		return &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &d}
	}
	base := "/api/metrics/" + rt.ID()

	// v1: one category per message.
	push(&protocol.Msg{Type: protocol.TypeHMStaticRep, Payload: &protocol.HMStatic{Time: now, Host: protocol.HMHost{Name: "v1-host"}}})
	push(dyn(protocol.HMDynamicRep{Usage: &protocol.HMUsage{CPU: protocol.HMUsageCPU{Usage: 12.5, Load1: 0.5}, Memory: protocol.HMUsageMemory{Used: 1000}}}))
	push(dyn(protocol.HMDynamicRep{Process: []protocol.HMProcess{{ID: 1, User: "root", Cmd: []string{"/sbin/init"}}, {ID: 42, User: "www", RSS: 1 << 20}}}))
	push(dyn(protocol.HMDynamicRep{Temperatures: []protocol.HMTemperature{{Name: "coretemp_core0", Temp: 41.5}}}))
	checks := []struct{ route, want string }{
		{"/static", `"name":"v1-host"`},
		{"/dynamic/usage", `"usage":12.5`},
		{"/dynamic/process", `"id":42`},
		{"/dynamic/temps", `"temp":41.5`},
	}
	for _, c := range checks {
		eventually.Within(t, 15*time.Second, c.route+"?cached=1 holding "+c.want, func() bool {
			e := srv.do(t, "GET", base+c.route+"?cached=1", nil)
			return e.status == http.StatusOK && strings.Contains(string(e.Payload), c.want)
		})
	}

	// Ours: several categories in one message replace each of them.
	push(dyn(protocol.HMDynamicRep{
		Usage:       &protocol.HMUsage{CPU: protocol.HMUsageCPU{Usage: 77}},
		Process:     []protocol.HMProcess{{ID: 7, User: "ops"}},
		Connections: []protocol.HMConnection{{Pid: 7, Type: "tcp4", Local: "10.0.0.1:22", Remote: "10.0.0.2:50000", Status: "ESTABLISHED"}},
	}))
	checks = []struct{ route, want string }{
		{"/dynamic/usage", `"usage":77`},
		{"/dynamic/process", `"id":7,`},
		{"/dynamic/connections", `"local":"10.0.0.1:22"`},
		{"/dynamic/temps", `"temp":41.5`}, // not in the message: kept
	}
	for _, c := range checks {
		eventually.Within(t, 15*time.Second, c.route+"?cached=1 holding "+c.want, func() bool {
			e := srv.do(t, "GET", base+c.route+"?cached=1", nil)
			return e.status == http.StatusOK && strings.Contains(string(e.Payload), c.want)
		})
	}
	eventually.Within(t, 15*time.Second, "the sensor in /metrics/hosts", func() bool {
		resp, err := srv.client.Get("http://" + srv.addr + "/metrics/hosts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), fmt.Sprintf(`id="%s"`, rt.ID())) && strings.Contains(string(b), "node_hwmon_temp_celsius{")
	})
}
