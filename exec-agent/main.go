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
	"os"

	"github.com/agentfleet/libagent"

	"github.com/agentfleet/exec-agent/internal/agent"
	"github.com/agentfleet/exec-agent/internal/install"
)

func main() {
	// Hidden: the agent runs itself this way, through su or sudo, to
	// unpack an archive as another user (docs/install.md).
	if len(os.Args) > 1 && os.Args[1] == install.ExtractCommand {
		os.Exit(install.ExtractMain(os.Args[2:], os.Stdout))
	}
	cfg := agent.DefaultConfig()
	libagent.Main(agent.New(&cfg))
}
