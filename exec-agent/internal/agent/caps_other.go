//go:build !windows

package agent

import "github.com/agentfleet/libagent/protocol"

// shellCaps are the capabilities of the interactive sessions.
var shellCaps = []string{protocol.CapPty}
