// Command agent-server holds the WebSocket sessions of the fleet's agents and
// serves the HTTP API, /metrics and the API documentation.
//
//	agent-server [--conf conf/server.conf] run|install|uninstall|start|stop|restart|status|version
//	agent-server [--conf conf/server.conf] [--period 30s] [--token-file F] drain
//
// run serves in the foreground (also what the service manager starts);
// install/uninstall/start/stop/restart/status manage the OS service. The
// default config is conf/server.conf next to the binary; relative paths in
// it are relative to the binary's directory. drain asks the running
// cluster member of that config, at its cluster.advertise address, to
// drain (docs/cluster.md, "Balancing and drain").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/agentfleet/libagent/buildinfo"
	"github.com/agentfleet/libagent/service"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/server"
)

const name = "agent-server"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [--conf FILE] run|install|uninstall|start|stop|restart|status|version\n", name)
	fmt.Fprintf(w, "       %s [--conf FILE] [--period D] [--token-file F] drain\n", name)
}

// run parses the command line and does what it says; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr); fs.PrintDefaults() }
	exe, _ := os.Executable()
	base := filepath.Dir(exe)
	conf := fs.String("conf", filepath.Join(base, "conf", "server.conf"), "configuration file")
	period := fs.Duration("period", 0, "drain: the time the sessions' closes are spread over (default cluster.drain_period, or 30s)")
	tokenFile := fs.String("token-file", "", "drain: file holding the API token (default $"+TokenEnv+", else a configured token with cluster:write)")

	// The command may come before or after the flags.
	var cmd string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cmd == "" && fs.NArg() > 0 {
		cmd = fs.Arg(0)
	}
	if cmd == "" || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != cmd) {
		usage(stderr)
		return 2
	}
	confPath, err := filepath.Abs(*conf)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	svc := service.Config{
		Name:        name,
		DisplayName: "agent-server",
		Description: "Holds the agents' connections and serves the fleet API.",
		Args:        []string{"run", "--conf", confPath},
		StopTimeout: 30 * time.Second,
	}
	switch {
	case cmd == "version":
		fmt.Fprintln(stdout, buildinfo.String(name))
		return 0
	case cmd == "run":
		if err := serve(confPath, base, svc, stderr); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		return 0
	case cmd == "drain":
		if err := drain(confPath, base, *tokenFile, *period, stdout); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		return 0
	case cmd == "status":
		st, err := service.Status(svc)
		if err != nil {
			fmt.Fprintf(stderr, "%s: status: %v\n", name, err)
			return 1
		}
		fmt.Fprintln(stdout, st)
		if st != service.StateRunning {
			return 3 // as LSB init scripts: not running
		}
		return 0
	case slices.Contains(service.Actions, cmd):
		if cmd == "install" {
			// Refuse to install a service that cannot start.
			cfg, err := config.Load(confPath, config.Options{BaseDir: base})
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
				return 1
			}
			// A stop drains first for cluster.drain_period: the service
			// manager must wait that long more.
			svc.StopTimeout += time.Duration(cfg.Cluster.DrainPeriod)
		}
		if err := service.Control(svc, cmd); err != nil {
			fmt.Fprintf(stderr, "%s: %s: %v\n", name, cmd, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n", name, cmd)
	usage(stderr)
	return 2
}

// serve loads the config and runs the server until SIGINT / SIGTERM (or the
// Windows service manager's stop).
func serve(confPath, base string, svc service.Config, stderr io.Writer) error {
	var warns []string
	cfg, err := config.Load(confPath, config.Options{BaseDir: base, Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		return err
	}
	// Process-wide, so set here and not by the server package (tests run
	// several servers in one process).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(int(cfg.GCPercent))
	}
	return service.Run(svc, func(ctx context.Context) error {
		srv, err := server.New(ctx, cfg, server.Options{ShutdownTimeout: 20 * time.Second})
		if err != nil {
			return err
		}
		for _, w := range warns {
			fmt.Fprintf(stderr, "%s: warning: %s\n", name, w)
		}
		err = srv.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	})
}
