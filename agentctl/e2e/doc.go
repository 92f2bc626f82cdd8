// Package e2e runs the real agentctl binary against the real agent-server
// with real exec-agents and a metrics-agent, each built with `go build` and
// started as its own process on 127.0.0.1: one shared fleet for the package
// (three exec-agents, e2e-a1..a3, and e2e-m1), plus small ones where a test
// needs other server settings.
//
// Golden files: testdata/json holds the shape (keys and value types) of
// every documented `-o json` output; `go test ./e2e -update` rewrites them.
//
// The tests are Linux-only (signals, tmux). The cp throughput comparison
// with curl is behind the e2ebench build tag (BENCHMARKS.md):
//
//	go test -tags e2ebench -run TestCpThroughput -v ./e2e/
package e2e
