// Command log-agent collects log lines — files by glob, Docker containers'
// output and files, Kubernetes pods' logs — for the projects configured on
// this node, batches and compresses them, and keeps them in an on-disk
// spool until the sink acknowledged them.
//
//	log-agent [--conf conf/agent.conf] run|install|uninstall|start|stop|restart|status|version
//
// The config keys are basic.* (every agent) and collect.*; conf/manifest.yaml
// describes them and docs/logging.md the collection. Everything but the
// wiring is in internal/.
package main

import (
	"github.com/agentfleet/libagent"

	"github.com/agentfleet/log-agent/internal/agent"
)

func main() {
	libagent.Main(agent.New(agent.DefaultConfig(), agent.Options{}).Describe())
}
