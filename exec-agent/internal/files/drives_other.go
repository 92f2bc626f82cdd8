//go:build !windows

package files

import "github.com/agentfleet/libagent/protocol"

// isDrivesRoot: only Windows has a list of drives above its roots.
func isDrivesRoot(string) bool { return false }

func listDrives() ([]protocol.FileInfo, error) { return nil, nil }
