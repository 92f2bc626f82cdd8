// Package buildinfo holds the version stamp of a binary. The build sets it
// with
//
//	-ldflags "-X github.com/agentfleet/libagent/buildinfo.Version=1.2.3
//	          -X github.com/agentfleet/libagent/buildinfo.Commit=abc1234
//	          -X github.com/agentfleet/libagent/buildinfo.Date=2026-11-24T13:00:00Z"
//
// These are variables only because -X can set nothing else; treat them as
// constants.
package buildinfo

import (
	"fmt"
	"runtime"
)

// Set at link time; the defaults mark a development build.
var (
	Version = "0.0.0-dev"
	Commit  = "unknown"
	Date    = "unknown"
)

// GoVersion returns the Go release the binary was built with ("go1.26.0").
func GoVersion() string { return runtime.Version() }

// String returns the one-line answer of a "version" subcommand:
//
//	exec-agent 1.2.3 (commit abc1234, built 2026-11-24T13:00:00Z, go1.26.0 linux/amd64)
func String(name string) string {
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s/%s)",
		name, Version, Commit, Date, GoVersion(), runtime.GOOS, runtime.GOARCH)
}
