// Command metrics-agent collects host facts and usage — static facts,
// usage, processes, connections, temperatures — on per-category schedules
// and pushes them to agent-server, which also asks it for fresh data.
//
//	metrics-agent [--conf conf/agent.conf] run|install|uninstall|start|stop|restart|status|version
//
// The config keys are basic.* (every agent) and task.* (config.md);
// conf/manifest.yaml describes them. Everything but the wiring is in
// internal/agent (runtime side) and internal/collect (collectors).
package main

import (
	"github.com/agentfleet/libagent"

	"github.com/agentfleet/metrics-agent/internal/agent"
)

func main() {
	cfg := agent.DefaultConfig()
	a := agent.New(cfg, agent.Options{})
	libagent.Main(&libagent.Agent{
		Name:   "metrics-agent",
		Config: cfg,
		Setup:  a.Setup,
		Report: a.Report,
	})
}
