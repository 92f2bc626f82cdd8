// Command demo runs agent-server on the embedded default (SQLite, 127.0.0.1)
// with an exec-agent, a metrics-agent and the example-agent connected to it,
// prints the API token and ready-to-paste agentctl and curl commands, and
// stops everything on Ctrl-C. `make demo` builds the binaries and runs it.
//
//	demo [-bin bin] [-data demo-data] [-port 13081] [-check]
//
// With -check it runs headless: once the three agents are listed it runs a
// command through the API (and through agentctl when it is built), checks
// the answers, stops everything and exits 0 (the test of `make demo`).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "folder holding the agent-server and agent binaries")
	flag.StringVar(&o.data, "data", "demo-data", "folder for the demo's configs, data and logs (kept between runs)")
	flag.IntVar(&o.port, "port", 13081, "server port on 127.0.0.1")
	flag.BoolVar(&o.check, "check", false, "headless: check that the agents connect and a command runs, then stop")
	flag.DurationVar(&o.wait, "wait", 60*time.Second, "how long to wait for the server and the agents")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, data string
	port      int
	check     bool
	wait      time.Duration
}

// agents are the agents the demo starts, by binary name.
var agents = []string{"exec-agent", "metrics-agent", "example-agent"}

func run(ctx context.Context, o options, out *os.File) error {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	data, err := filepath.Abs(o.data)
	if err != nil {
		return err
	}
	for _, name := range append([]string{"agent-server"}, agents...) {
		if _, err := os.Stat(filepath.Join(bin, exe(name))); err != nil {
			return fmt.Errorf("%s not built (run make build): %w", name, err)
		}
	}
	d := &demo{bin: bin, data: data, port: o.port, out: out}
	defer d.stopAll()

	if err := d.startServer(ctx, o.wait); err != nil {
		return err
	}
	for _, name := range agents {
		if err := d.startAgent(name); err != nil {
			return err
		}
	}
	ids, err := d.waitAgents(ctx, o.wait)
	if err != nil {
		return err
	}
	if o.check {
		return d.check(ctx, ids)
	}
	d.printHelp(ids)
	select {
	case <-ctx.Done():
	case err := <-d.exited:
		if ctx.Err() == nil {
			return err
		}
	}
	fmt.Fprintln(out, "\nstopping…")
	return nil
}
