// Command example-agent is the smallest complete agent on libagent: it
// answers the server's foo with bar (GET /api/foo/:id), shows an agent-defined
// message type, a config key of its own and a custom self-report field. Copy
// this folder to start a new agent; docs/writing-an-agent.md walks through it.
package main

import (
	"github.com/agentfleet/example-agent/internal/agent"
	"github.com/agentfleet/libagent"
)

func main() {
	libagent.Main(agent.New())
}
