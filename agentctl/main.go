// Command agentctl drives agent-server and its agents from a terminal or a
// script: agents, commands on one or many hosts, an interactive shell,
// file copies, fleet tasks, layouts, metrics, logs and the audit log. It
// is a client of the server's public HTTP API only; see docs/cli.md.
package main

import (
	"os"

	"github.com/agentfleet/agentctl/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
