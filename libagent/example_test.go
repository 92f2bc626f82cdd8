package libagent_test

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"
)

// Config is a complete agent config: the basic.* keys every agent has, and
// the agent's own keys.
type Config struct {
	Basic libagent.Basic `kv:"basic"`
	// echo.delay = 10ms in conf/agent.conf
	Echo struct {
		Delay time.Duration `kv:"delay"`
	} `kv:"echo"`
}

// A complete minimal agent: it answers foo (8) with bar (9) after a
// configurable delay, and adds a counter to its self-report. Build it with
// `go build`, put conf/agent.conf next to the binary, then run
// `./echo-agent run` (or `install` + `start` as a service).
func Example() {
	cfg := &Config{}
	var served atomic.Int64 // handlers run concurrently
	libagent.Main(&libagent.Agent{
		Name:   "echo-agent",
		Config: cfg, // filled from --conf before Setup runs
		Setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				select {
				case <-time.After(cfg.Echo.Delay):
				case <-ctx.Done():
					return ctx.Err() // sent as type 0 with the error text
				}
				served.Add(1)
				return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeBar})
			}, libagent.WithTimeout(30*time.Second))
			return nil
		},
		Report: func(extra map[string]any) { extra["served"] = served.Load() },
	})
}
