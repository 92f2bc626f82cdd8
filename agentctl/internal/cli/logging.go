package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// loggingCmd is the log-collection group: the projects of /api/logging/
// and the lines they collected. (`agentctl logs ID` is an agent's own log.)
func (a *App) loggingCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "logging",
		Short: "Log collection: projects, their nodes, and the lines collected (query, live tail)",
		Long: `Log collection (docs/logging.md): a project tells log-agents what to collect (files by
glob, Docker containers, Kubernetes pods); the server stores every line once and answers
queries and a live tail. These commands are the /api/logging/ routes.

(agentctl logs ID prints an agent's own log instead.)`,
		Example: `  agentctl logging config web --type logtail --ids web-01,web-02 --dir '/var/log/app/*.log'
  agentctl logging projects
  agentctl logging status web
  agentctl logging query web --grep ERROR --since 1h
  agentctl logging tail web -f`,
	}
	c.AddCommand(a.loggingProjectsCmd(), a.loggingStatusCmd(), a.loggingConfigCmd(), a.loggingApplyCmd(),
		a.loggingActionCmd("start", "Start a stopped project: its nodes collect again from where they stopped"),
		a.loggingActionCmd("stop", "Stop a project: its nodes stop collecting and keep their checkpoints"),
		a.loggingActionCmd("rm", "Remove a project: its nodes drop its state, and its stored lines are deleted"),
		a.loggingQueryCmd(), a.loggingTailCmd())
	return c
}

// completeProjects completes project names (first argument only).
func (a *App) completeProjects(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	list, ok := completionGet(a, cmd, (*client.Client).LogProjects)
	if !ok {
		return nil, noFiles
	}
	var out []string
	for _, p := range list {
		if strings.HasPrefix(p.PID, toComplete) {
			out = append(out, p.PID+"\t"+p.Type+" "+projectState(p))
		}
	}
	return out, noFiles
}

func projectState(p client.LogProject) string {
	if p.Running {
		return "running"
	}
	return "stopped"
}

// nodeStatus is a node's status for people ("stoped" is the seed's
// spelling, kept in JSON).
func nodeStatus(s string) string {
	if s == "stoped" {
		return "stopped"
	}
	return s
}

// projectTarget says what a project collects, in a few words.
func projectTarget(c client.LogConfig) string {
	switch c.Type {
	case "docker":
		s := "containers " + c.CtName
		if c.CtTag != "" {
			s += " tag " + c.CtTag
		}
		if c.Dir != "" {
			s += " files " + c.Dir
		}
		return s
	case "k8s":
		s := "pods " + c.NS + "/" + strings.Join(c.Name, ",")
		if c.Dir != "" {
			s += " files " + c.Dir
		}
		return s
	}
	return c.Dir
}

func (a *App) loggingProjectsCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:     "projects [PROJECT]",
		Aliases: []string{"ls"},
		Short:   "List the log-collection projects (or show one)",
		Long: `List every project: its type, whether it runs, how many of its nodes collect now, and what
it collects. With a name, only that project. -o wide adds the batching parameters; -o json and
-o yaml print the projects as GET /api/logging/task_info gives them (times in RFC 3339).`,
		Example: `  agentctl logging projects
  agentctl logging projects web -o yaml`,
		Args:              args(0, 1),
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			var list []client.LogProject
			if len(args) == 1 {
				p, err := cl.LogProject(ctx, args[0])
				if err != nil {
					return err
				}
				list = []client.LogProject{p}
			} else if list, err = cl.LogProjects(ctx); err != nil {
				return err
			}
			if list == nil {
				list = []client.LogProject{}
			}
			if len(args) == 1 {
				if ok, err := printData(a.Out, output, list[0]); ok {
					return err
				}
			} else if ok, err := printData(a.Out, output, list); ok {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintln(a.Err, "no project: agentctl logging config NAME --type logtail --ids AGENT --dir GLOB makes one")
				return nil
			}
			pal := a.palette(a.Out)
			head := []string{"PROJECT", "TYPE", "STATE", "NODES", "COLLECTS"}
			if output == fmtWide {
				head = append(head, "EXCLUDE", "BATCH", "BUFFER", "INTERVAL", "VERSION", "CREATED")
			}
			t := newTable(a.Out, head...)
			for _, p := range list {
				running, online := 0, 0
				for _, n := range p.Nodes {
					if n.Status == "running" {
						running++
					}
					if n.Online {
						online++
					}
				}
				nodes := fmt.Sprintf("%d/%d running", running, len(p.Nodes))
				if online < len(p.Nodes) {
					nodes += fmt.Sprintf(", %d offline", len(p.Nodes)-online)
				}
				row := []string{p.PID, p.Type, pal.state(projectState(p)), nodes, orDash(projectTarget(p.Config))}
				if output == fmtWide {
					row = append(row, orDash(p.Exclude), fmt.Sprint(p.Batch), bytesIEC(uint64(p.Buffer)), fmt.Sprintf("%ds", p.Interval),
						fmt.Sprint(p.Version), stamp(p.Created))
				}
				t.row(row...)
			}
			return t.flush()
		},
	}
	outputFlag(c, &output, fmtTable, fmtWide, fmtJSON, fmtYAML)
	return c
}

func (a *App) loggingStatusCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "status PROJECT",
		Short: "A project's nodes: collecting or not, connected, counters, errors",
		Long: `Show each node of a project as GET /api/logging/task_info reports it: whether it collects
(running, or stopped), whether its log-agent is connected, the lines read, shipped and dropped,
the bytes not yet shipped (lag), when it last reported, and its last error. -o wide adds the files
followed and what each node collects (the seed's info); -o json and -o yaml print task_info.`,
		Example: `  agentctl logging status web
  agentctl logging status web -o wide`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			p, err := cl.LogProject(ctx, args[0])
			if err != nil {
				return err
			}
			if ok, err := printData(a.Out, output, p); ok {
				return err
			}
			pal := a.palette(a.Out)
			fmt.Fprintf(a.Out, "%s: %s, %s, version %d, created %s\n\n", p.PID, p.Type, pal.state(projectState(p)), p.Version, stamp(p.Created))
			head := []string{"NODE", "STATUS", "ONLINE", "LINES", "SHIPPED", "DROPPED", "LAG", "UPDATED", "ERROR"}
			if output == fmtWide {
				head = append(head, "FILES", "BYTES", "INFO")
			}
			t := newTable(a.Out, head...)
			now := time.Now()
			for _, n := range p.Nodes {
				online := "offline"
				if n.Online {
					online = "online"
				}
				row := []string{n.ID, pal.state(nodeStatus(n.Status)), pal.state(online), fmt.Sprint(n.Stat("lines")), fmt.Sprint(n.Stat("shipped_lines")),
					fmt.Sprint(n.Stat("dropped_lines")), bytesIEC(uint64(max(n.Stat("lag_bytes"), 0))), ago(n.Updated, now), orDash(n.Error)}
				if output == fmtWide {
					row = append(row, fmt.Sprint(n.Stat("files")), bytesIEC(uint64(max(n.Stat("bytes"), 0))), infoText(n.Info))
				}
				t.row(row...)
			}
			return t.flush()
		},
	}
	outputFlag(c, &output, fmtTable, fmtWide, fmtJSON, fmtYAML)
	return c
}

// infoText renders a node's info entries: k=v, sorted by key.
func infoText(info []map[string]any) string {
	var parts []string
	for _, m := range info {
		s := make(map[string]string, len(m))
		for k, v := range m {
			s[k] = fmt.Sprint(v)
		}
		parts = append(parts, labelsText(s))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func (a *App) loggingConfigCmd() *cobra.Command {
	var cfg client.LogConfig
	var tokenFile string
	c := &cobra.Command{
		Use:   "config PROJECT --type logtail|docker|k8s [flags]",
		Short: "Create or replace a project from flags",
		Long: `Create a project, or replace one (its running state is kept: a running project goes on
with the new settings). The flags are the seed's parameters (docs/logging.md): logtail collects
files matching --dir on the agents --ids; docker the containers --ct-name (and --ct-tag), their
output or the files --dir inside them; k8s the pods of --ns with app label in --name, through
the API --api with the token in --token-file (never on the command line). A new project starts
at once. POST /api/logging/config.`,
		Example: `  agentctl logging config web --type logtail --ids web-01,web-02 --dir '/var/log/app/*.log' --exclude 'DEBUG|healthz'
  agentctl logging config nginx --type docker --ids web-01 --ct-name 'nginx-*' --ct-tag 1.25
  agentctl logging config shop --type k8s --ns shop --name web,api --api https://10.0.0.1:6443 --token-file sa.token`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Type == "" {
				return usagef(cmd, "--type is required: logtail, docker or k8s")
			}
			cfg.PID = args[0]
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--token-file: %w", err)}
				}
				cfg.Token = strings.TrimSpace(string(b))
			}
			return a.applyLogConfig(cmd, cfg)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Type, "type", "", "logtail (files), docker (containers) or k8s (pods)")
	f.StringSliceVar((*[]string)(&cfg.IDs), "ids", nil, "log-agents that collect (comma-separated or repeated; k8s: default every log-agent)")
	f.StringVar(&cfg.Dir, "dir", "", "logtail: absolute glob of the files; docker, k8s: files inside the container (default: its output)")
	f.StringVar(&cfg.Exclude, "exclude", "", "RE2 regex: matching records are dropped (counted)")
	f.IntVar(&cfg.Batch, "batch", 0, "lines per batch (server default 1000)")
	f.IntVar(&cfg.Buffer, "buffer", 0, "bytes per batch (server default 4096)")
	f.IntVar(&cfg.Interval, "interval", 0, "seconds a line may wait in an open batch (server default 30)")
	f.StringVar(&cfg.ReadFrom, "read-from", "", "where files present at the first start begin: end (default) or beginning")
	f.StringVar(&cfg.CtName, "ct-name", "", "docker: container name glob")
	f.StringVar(&cfg.CtTag, "ct-tag", "", "docker: image tag")
	f.StringVar(&cfg.NS, "ns", "", "k8s: namespace")
	f.StringSliceVar((*[]string)(&cfg.Name), "name", nil, "k8s: app names (label app)")
	f.StringVar(&cfg.API, "api", "", "k8s: API server URL")
	f.StringVar(&tokenFile, "token-file", "", "k8s: file holding the API token")
	_ = c.RegisterFlagCompletionFunc("type", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"logtail", "docker", "k8s"}, noFiles
	})
	_ = c.RegisterFlagCompletionFunc("read-from", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"end", "beginning"}, noFiles
	})
	_ = c.RegisterFlagCompletionFunc("ids", a.completeAgentIDs(true, "log-agent"))
	return c
}

func (a *App) loggingApplyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "apply FILE",
		Short: "Create or replace a project from a YAML or JSON file",
		Long: `Create or replace the project a YAML or JSON file describes, with the seed's parameter
names (pid, type, ids, dir, exclude, batch, buffer, interval, read_from, ct_name, ct_tag, ns,
name, api, token). ids and name are lists or comma-separated strings. "-" reads stdin. An unknown
key is an error naming its line. POST /api/logging/config.`,
		Example: `  agentctl logging apply web.yaml
  agentctl logging projects web -o json | agentctl logging apply -   # the same project again

  # web.yaml
  pid: web
  type: logtail
  ids: [web-01, web-02]
  dir: /var/log/app/*.log
  exclude: DEBUG|healthz`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = io.ReadAll(io.LimitReader(a.In, 1<<20))
			} else {
				b, err = os.ReadFile(args[0])
			}
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			cfg, err := client.ParseLogConfig(b)
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s: %w", args[0], err)}
			}
			return a.applyLogConfig(cmd, cfg)
		},
	}
	return c
}

func (a *App) applyLogConfig(cmd *cobra.Command, cfg client.LogConfig) error {
	cl, ctx, cancel, err := a.clientCtx(cmd)
	if err != nil {
		return err
	}
	defer cancel()
	existed := true
	if _, err := cl.LogProject(ctx, cfg.PID); err != nil {
		existed = false
	}
	if err := cl.ConfigureLog(ctx, cfg); err != nil {
		return err
	}
	verb := "created"
	if existed {
		verb = "replaced"
	}
	fmt.Fprintf(a.Out, "project %s %s\n", cfg.PID, verb)
	return nil
}

func (a *App) loggingActionCmd(name, short string) *cobra.Command {
	action, past := name, name+"ed"
	switch name {
	case "rm":
		action, past = "remove", "removed"
	case "stop":
		past = "stopped"
	}
	return &cobra.Command{
		Use:               name + " PROJECT...",
		Short:             short,
		Long:              short + ". POST /api/logging/" + action + " for each project named.",
		Example:           "  agentctl logging " + name + " web",
		Args:              args(1, -1),
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			for _, pid := range args {
				if err := cl.LogAction(ctx, action, pid); err != nil {
					return fmt.Errorf("%s: %w", pid, err)
				}
				fmt.Fprintf(a.Out, "project %s %s\n", pid, past)
			}
			return nil
		},
	}
}
