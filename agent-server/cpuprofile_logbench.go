//go:build logbench && !windows

package main

// Built only with -tags logbench (the log collection benchmark,
// agent-server/e2e/logbench): with LOGBENCH_CPUPROFILE set, the process
// writes a CPU profile there until SIGUSR1 (jkframe/benchprof).

import "github.com/agentfleet/jkframe/benchprof"

func init() { benchprof.FromEnv("LOGBENCH_CPUPROFILE") }
