// Command exec-agent runs commands and scripts and moves files on the host
// it is installed on, driven by agent-server's /api/exec, /api/file and
// /api/script routes.
//
//	exec-agent [--conf conf/agent.conf] run|install|uninstall|start|stop|restart|status|version
//
// The config keys are described in conf/manifest.yaml; conf/agent.conf
// lists them with their defaults.
package main

import (
	"github.com/agentfleet/libagent"

	"github.com/agentfleet/exec-agent/internal/agent"
)

func main() {
	cfg := agent.DefaultConfig()
	libagent.Main(agent.New(&cfg))
}
