// Package e2e runs the real agent-server and the real exec-agent, each
// built with `go build` and started as its own process, on 127.0.0.1, and
// checks issue 5's end-to-end behaviour through the server's HTTP API. The
// agent reaches the server through a TCP proxy the tests can cut.
//
// The tests are Linux-only (they look for surviving processes in /proc).
// The benchmarks of issue 5 (exec round trip, 200 MB transfers, agent RSS)
// are in bench_test.go behind the build tag e2ebench:
//
//	go test -tags e2ebench -run '^$' -bench . -benchtime 50x ./e2e/
package e2e
