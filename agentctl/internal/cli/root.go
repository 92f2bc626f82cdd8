// Package cli is agentctl's command tree (cobra): every command is a
// client of agent-server's public HTTP API through internal/client.
//
// Exit codes: 0 ok, 1 remote failure, 2 usage, 3 connection or
// authentication; `run` on one agent passes the remote exit code through,
// and a run interrupted with Ctrl-C exits 130.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentfleet/libagent/buildinfo"

	"github.com/agentfleet/agentctl/internal/client"
	"github.com/agentfleet/agentctl/internal/config"
)

// App is one invocation: its streams, environment and global flags.
type App struct {
	In       io.Reader
	Out, Err io.Writer
	Getenv   func(string) string
	// IsTerminal reports whether a stream is a terminal.
	IsTerminal func(any) bool

	// global flags
	contextName    string
	server         string
	requestTimeout time.Duration
	debug          bool

	cfgPath string
	cfg     *config.File
	cli     *client.Client
	args    []string // as given to Run
}

// Main runs agentctl with the process's streams and returns the exit
// code.
func Main(args []string) int {
	a := &App{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, IsTerminal: isTerminal}
	return a.Run(context.Background(), args)
}

func isTerminal(f any) bool {
	if f, ok := f.(interface{ Fd() uintptr }); ok {
		return term.IsTerminal(int(f.Fd()))
	}
	return false
}

// Run executes args and returns the exit code; errors are printed to Err.
func (a *App) Run(ctx context.Context, args []string) int {
	a.args = args
	root := a.Root()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if a.cli != nil {
		a.cli.Close()
	}
	if err == nil {
		return ExitOK
	}
	msg, code := describe(err)
	if msg != "" {
		fmt.Fprintf(a.Err, "agentctl: %s\n", msg)
	}
	return code
}

// Root builds the command tree.
func (a *App) Root() *cobra.Command {
	root := &cobra.Command{
		Use:   "agentctl",
		Short: "Drive an agentfleet from the command line",
		Long: `agentctl drives agent-server and its agents from a terminal or a script: list agents,
run commands on one or many hosts, open a shell, copy files, follow fleet tasks, read metrics
and audit. It is a client of the server's public HTTP API only.

Start with: agentctl login https://server:13081`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		Version:           buildinfo.Version,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetIn(a.In)
	root.SetOut(a.Out)
	root.SetErr(a.Err)
	root.SetVersionTemplate(buildinfo.String("agentctl") + "\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErr(c, err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.contextName, "context", "", "context of the config file to use (default: the current one; env AGENTCTL_CONTEXT)")
	pf.StringVar(&a.server, "server", "", "server URL, overriding the context's (env AGENTCTL_SERVER)")
	pf.DurationVar(&a.requestTimeout, "request-timeout", 30*time.Second, "timeout of one API call (not of transfers and streams)")
	pf.BoolVar(&a.debug, "debug", false, "print each API request to stderr (never the token)")
	root.AddGroup(&cobra.Group{ID: "fleet", Title: "Fleet:"}, &cobra.Group{ID: "tasks", Title: "Tasks:"}, &cobra.Group{ID: "config", Title: "Configuration:"})
	for _, c := range []*cobra.Command{a.agentsCmd(), a.runCmd(), a.shellCmd(), a.cpCmd(), a.scriptCmd(), a.installCmd(), a.upgradeCmd(), a.metricsCmd(), a.logsCmd(), a.loggingCmd(), a.packagesCmd()} {
		c.GroupID = "fleet"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.tasksCmd(), a.layoutCmd(), a.auditCmd()} {
		c.GroupID = "tasks"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.loginCmd(), a.contextCmd(), a.whoamiCmd(), a.versionCmd()} {
		c.GroupID = "config"
		root.AddCommand(c)
	}
	root.InitDefaultCompletionCmd() // now, so that its commands are in the tree (help tests)
	return root
}

// usageErr marks err as a usage error (exit 2) and points at the help.
func usageErr(c *cobra.Command, err error) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
}

// usagef is a usage error of command c.
func usagef(c *cobra.Command, format string, a ...any) error {
	return usageErr(c, fmt.Errorf(format, a...))
}

// args checks the number of positional arguments as a usage error.
func args(min, max int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		n := len(args)
		if dash := c.ArgsLenAtDash(); dash >= 0 {
			n = dash
		}
		switch {
		case n < min && min == max:
			return usagef(c, "%s needs %d argument(s), got %d", c.Name(), min, n)
		case n < min:
			return usagef(c, "%s needs at least %d argument(s), got %d", c.Name(), min, n)
		case max >= 0 && n > max:
			return usagef(c, "%s takes at most %d argument(s), got %d: %s", c.Name(), max, n, strings.Join(args[max:], " "))
		}
		return nil
	}
}

// config loads the config file once.
func (a *App) config() (*config.File, string, error) {
	if a.cfg != nil {
		return a.cfg, a.cfgPath, nil
	}
	path, err := config.Path(a.Getenv)
	if err != nil {
		return nil, "", err
	}
	f, warn, err := config.Load(path)
	if err != nil {
		return nil, "", &ExitError{Code: ExitUsage, Err: err}
	}
	if warn != "" {
		fmt.Fprintf(a.Err, "agentctl: warning: %s\n", warn)
	}
	a.cfg, a.cfgPath = f, path
	return f, path, nil
}

// context returns the context in effect: --context / AGENTCTL_CONTEXT or
// the current one, with --server / AGENTCTL_SERVER and AGENTCTL_TOKEN on
// top.
func (a *App) context() (config.Context, error) {
	f, path, err := a.config()
	if err != nil {
		return config.Context{}, err
	}
	name := a.contextName
	if name == "" {
		name = a.Getenv("AGENTCTL_CONTEXT")
	}
	var ctx config.Context
	if name != "" {
		c, ok := f.Get(name)
		if !ok {
			return ctx, &ExitError{Code: ExitUsage, Err: fmt.Errorf("no context %q in %s (agentctl context ls)", name, path)}
		}
		ctx = c
	} else if f.Current != "" {
		ctx, _ = f.Get(f.Current)
	}
	if s := a.Getenv("AGENTCTL_SERVER"); s != "" {
		ctx.Server = s
	}
	if a.server != "" {
		ctx.Server = a.server
	}
	if t := a.Getenv("AGENTCTL_TOKEN"); t != "" {
		ctx.Token = t
	}
	if ctx.Server == "" {
		return ctx, &ExitError{Code: ExitAuth, Err: errors.New("no server: run agentctl login SERVER, or set AGENTCTL_SERVER and AGENTCTL_TOKEN")}
	}
	return ctx, nil
}

// client returns the API client of the context in effect.
func (a *App) client() (*client.Client, error) {
	if a.cli != nil {
		return a.cli, nil
	}
	ctx, err := a.context()
	if err != nil {
		return nil, err
	}
	c, err := a.newClient(ctx)
	if err != nil {
		return nil, err
	}
	a.cli = c
	return c, nil
}

func (a *App) newClient(ctx config.Context) (*client.Client, error) {
	o := client.Options{
		Servers: ctx.Servers(), Token: ctx.Token, CAFile: ctx.CAFile, Insecure: ctx.Insecure,
		Timeout: a.requestTimeout, UserAgent: "agentctl/" + buildinfo.Version,
	}
	if a.debug {
		o.Debug = a.Err
	}
	c, err := client.New(o)
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return c, nil
}

// interruptible returns a context cancelled by Ctrl-C, for commands that
// have nothing to clean up remotely.
func interruptible(c *cobra.Command) (context.Context, context.CancelFunc) {
	return notifyContext(c.Context())
}

// clientCtx is the preamble of a command that calls the server: the client
// and an interruptible context (see interruptible), which the caller
// cancels when done.
func (a *App) clientCtx(cmd *cobra.Command) (*client.Client, context.Context, context.CancelFunc, error) {
	cl, err := a.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := interruptible(cmd)
	return cl, ctx, cancel, nil
}
