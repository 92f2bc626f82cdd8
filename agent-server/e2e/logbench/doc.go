// Package logbench holds the log collection benchmark (BENCHMARKS.md, "Log
// collection"): one log-agent binary ships one file of 200-byte numbered
// lines through the agent-server binary into its embedded store, side by
// side with Debian's rsyslog (imfile → omfwd TCP) reading the same file.
// The benchmark is a test behind the build tag logbench, not part of make
// test:
//
//	make logbench                      # LOGBENCH_MB=1024 LOGBENCH_RUNS=3
//
// See logbench_test.go for the environment variables.
package logbench
