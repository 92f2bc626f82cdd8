package libagent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentfleet/libagent/buildinfo"
	"github.com/agentfleet/libagent/selfupdate"
	"github.com/agentfleet/libagent/service"
)

// DefaultConfigPath is where Main looks for the config, relative to the
// directory of the executable.
const DefaultConfigPath = "conf/agent.conf"

const usage = `usage: %[1]s [--conf <path>] <command>

commands:
  run        run the agent in the foreground (what the service runs)
  install    install the agent as a system service (run with --conf <path>)
  uninstall  remove the service
  start, stop, restart, status
             control the installed service
  version    print the version
  upgrade-watchdog --plan <file>
             internal: the self-update watchdog (docs/upgrade.md)

--conf defaults to %[2]s next to the executable.
`

// Main is the whole main function of an agent:
//
//	func main() { libagent.Main(&libagent.Agent{Name: "example-agent", Config: &cfg, Setup: setup}) }
//
// It parses the command line (see the usage text: run, install, uninstall,
// start, stop, restart, status, version and --conf), runs the command and
// exits with its status.
func Main(a *Agent) {
	os.Exit(mainArgs(a, os.Args[1:], os.Stdout, os.Stderr))
}

// mainArgs runs one command line and returns the exit status.
func mainArgs(a *Agent, args []string, stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", a.Name, err)
		return 1
	}
	fs := flag.NewFlagSet(a.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, usage, a.Name, DefaultConfigPath) }
	conf := fs.String("conf", filepath.Join(filepath.Dir(exe), DefaultConfigPath), "config file")
	plan := fs.String("plan", "", "upgrade plan (upgrade-watchdog only)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // asked for: the usage went to stderr, not an error
		}
		return 2
	}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "help" {
		fs.Usage()
		return 0
	}
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	cmd := rest[0]
	// Flags may also follow the command: "agent run --conf x".
	if err := fs.Parse(rest[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", a.Name, fs.Arg(0))
		return 2
	}
	path, err := filepath.Abs(*conf)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --conf: %v\n", a.Name, err)
		return 2
	}
	svc := service.Config{
		Name:        a.Name,
		DisplayName: a.Name,
		Description: a.Name + " (agentfleet agent)",
		Executable:  exe,
		Args:        []string{"run", "--conf", path},
		WorkingDir:  filepath.Dir(exe),
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, buildinfo.String(a.Name))
		return 0
	case "run":
		err = service.Run(svc, func(ctx context.Context) error {
			return Run(ctx, a, Options{ConfigPath: path, BaseDir: filepath.Dir(exe)})
		})
		if re, ok := errors.AsType[*restartError](err); ok {
			return restart(a.Name, re, stderr)
		}
	case "upgrade-watchdog":
		return watchdog(*plan, stderr)
	case "status":
		st, serr := service.Status(svc)
		if serr != nil {
			err = serr
			break
		}
		fmt.Fprintf(stdout, "%s: %s\n", a.Name, st)
		if st != service.StateRunning {
			return 3 // LSB: program is not running
		}
		return 0
	case "install":
		if _, serr := os.Stat(path); serr != nil {
			err = fmt.Errorf("install: config %w", serr)
			break
		}
		err = service.Control(svc, cmd)
	case "uninstall", "start", "stop", "restart":
		err = service.Control(svc, cmd)
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n", a.Name, cmd)
		fs.Usage()
		return 2
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "%s %s: %v\n", a.Name, cmd, err)
		return 1
	}
	return 0
}

// restart starts the new binary after an upgrade: exit with
// selfupdate.ExitRestart for the service manager, or exec it.
func restart(name string, re *restartError, stderr io.Writer) int {
	if re.mode == selfupdate.RestartExec {
		fmt.Fprintf(stderr, "%s: upgrade: executing the new binary %s\n", name, re.exe)
		if err := selfupdate.Exec(re.exe); err != nil {
			fmt.Fprintf(stderr, "%s: upgrade: exec %s: %v; exiting for a restart instead\n", name, re.exe, err)
			return selfupdate.ExitRestart
		}
		return 0 // Windows: the new process runs
	}
	fmt.Fprintf(stderr, "%s: upgrade: exiting (status %d) for the service manager to start the new binary\n", name, selfupdate.ExitRestart)
	return selfupdate.ExitRestart
}

// watchdog runs the self-update watchdog of a plan file.
func watchdog(plan string, stderr io.Writer) int {
	if !strings.HasSuffix(plan, ".upgrade") {
		fmt.Fprintf(stderr, "upgrade-watchdog: --plan %q: want the <state>.upgrade file\n", plan)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := selfupdate.Watch(context.Background(), strings.TrimSuffix(plan, ".upgrade"), log); err != nil {
		log.Error("upgrade watchdog", "err", err)
		return 1
	}
	return 0
}
