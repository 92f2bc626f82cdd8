// Command bench-foo calls GET /api/foo/{id} once for each of the first N
// connected agents of a type, from parallel HTTP clients, and reports how
// many answered "bar", the errors by status, and latency percentiles. It is
// the /api/foo part of .ci/bench-scale.
//
//	bench-foo -api http://127.0.0.1:13081 -token-file data/api-token -n 10000 -clients 200
//
// The exit status is 1 when fewer than -n agents were found online or any
// call did not answer "bar".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-foo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		api       = fs.String("api", "http://127.0.0.1:13081", "agent-server base URL")
		token     = fs.String("token", "", "operator API token (Authorization: Bearer)")
		tokenFile = fs.String("token-file", "", "read the API token from this file (<data_dir>/api-token)")
		n         = fs.Int("n", 10000, "agents to call (the first N online agents of -type, by id)")
		clients   = fs.Int("clients", 200, "parallel HTTP clients")
		typ       = fs.String("type", "example-agent", "agent type to call")
		timeout   = fs.Duration("timeout", 30*time.Second, "per-call HTTP timeout")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "bench-foo:", err)
			return 2
		}
		*token = strings.TrimSpace(string(b))
	}
	if *n <= 0 || *clients <= 0 {
		fmt.Fprintln(stderr, "bench-foo: -n and -clients must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{base: strings.TrimRight(*api, "/"), token: *token, clients: *clients, timeout: *timeout}
	// Leave no connection open behind us: a server shutting down waits for
	// them (freshly dialed ones count as busy for 5 s).
	defer func() {
		if b.hc != nil {
			b.hc.CloseIdleConnections()
		}
	}()
	ids, err := b.onlineAgents(ctx, *typ, *n)
	if err != nil {
		fmt.Fprintln(stderr, "bench-foo:", err)
		return 1
	}
	res := b.callAll(ctx, ids)
	res.print(stdout)
	if len(ids) < *n {
		fmt.Fprintf(stderr, "bench-foo: only %d of %d agents online\n", len(ids), *n)
		return 1
	}
	if res.ok != len(ids) {
		return 1
	}
	return 0
}
