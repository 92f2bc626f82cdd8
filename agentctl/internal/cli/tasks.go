package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// taskView is a task in agentctl's JSON output (tasks ls, tasks get).
type taskView struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	State      string         `json:"state"`
	CreatedBy  string         `json:"created_by"`
	CreatedAt  client.Time    `json:"created_at"`
	StartedAt  client.Time    `json:"started_at"`
	FinishedAt client.Time    `json:"finished_at"`
	Msg        string         `json:"msg"`
	Summary    client.Summary `json:"summary"`
}

func viewTask(t client.Task) taskView {
	return taskView{ID: t.ID, Kind: t.Kind, State: t.State, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
		StartedAt: t.StartedAt, FinishedAt: t.FinishedAt, Msg: t.Msg, Summary: t.Summary}
}

// taskDetailView is the JSON of tasks get for a fleet task.
type taskDetailView struct {
	taskView
	Request json.RawMessage  `json:"request"`
	Agents  []taskResultView `json:"agents"`
}

type taskResultView struct {
	Agent       string      `json:"agent"`
	State       string      `json:"state"`
	ExitCode    int         `json:"exit_code"`
	Msg         string      `json:"msg"`
	StartedAt   client.Time `json:"started_at"`
	EndedAt     client.Time `json:"ended_at"`
	OutputHead  string      `json:"output_head"`
	OutputTail  string      `json:"output_tail"`
	Dropped     int64       `json:"dropped"`
	OutputBytes int64       `json:"output_bytes"`
}

func (a *App) tasksCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "tasks",
		Aliases: []string{"task"},
		Short:   "List, show, follow and cancel fleet tasks and layouts",
		Args:    args(0, 0),
	}
	c.AddCommand(a.tasksLsCmd(), a.tasksGetCmd(), a.tasksWatchCmd(), a.tasksCancelCmd(), a.tasksOutputCmd())
	return c
}

func (a *App) tasksLsCmd() *cobra.Command {
	var states []string
	var limit int
	var output string
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List fleet tasks and agent upgrades, newest first",
		Example: `  agentctl tasks ls --state running
  agentctl tasks ls --limit 100 -o json`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range states {
				if !client.Final(s) && s != "pending" && s != "running" {
					return usagef(cmd, "--state %q: want pending, running, done, cancelled or failed", s)
				}
			}
			if limit < 1 {
				return usagef(cmd, "--limit must be at least 1")
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			list, total, err := cl.Tasks(cmd.Context(), states, limit)
			if err != nil {
				return err
			}
			views := make([]taskView, len(list))
			for i, t := range list {
				views[i] = viewTask(t)
			}
			if ok, err := printData(a.Out, output, views); ok {
				return err
			}
			now := time.Now()
			t := newTable(a.Out, "ID", "KIND", "STATE", "AGENTS", "OK", "FAILED", "RUNNING", "CREATED", "BY", "MSG")
			for _, x := range list {
				s := x.Summary
				t.row(x.ID, orDash(x.Kind), x.State, fmt.Sprint(s.Total), fmt.Sprint(s.OK), fmt.Sprint(s.Failed+s.TimedOut+s.Lost), fmt.Sprint(s.Running),
					ago(x.CreatedAt, now)+" ago", orDash(x.CreatedBy), orDash(x.Msg))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if total > len(list) {
				fmt.Fprintf(a.Err, "(%d of %d tasks; --limit for more)\n", len(list), total)
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&states, "state", nil, "only tasks in these states: pending, running, done, cancelled, failed")
	c.Flags().IntVar(&limit, "limit", 20, "at most this many tasks")
	outputFlag(c, &output, fmtTable, fmtJSON, fmtYAML)
	_ = c.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"pending", "running", "done", "cancelled", "failed"}, noFiles
	})
	return c
}

// isLayout tells a layout id from a fleet task's: GET /api/tasks/{id}
// knows fleet tasks only.
func isNotFleet(err error) bool {
	return client.IsStatus(err, http.StatusNotFound) && !client.IsRouteMissing(err)
}

func (a *App) tasksGetCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:               "get ID",
		Short:             "Show a fleet task (or a layout) with each agent's result",
		Args:              args(1, 1),
		ValidArgsFunction: a.completeTaskIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			v, err := cl.Task(ctx, args[0])
			if isNotFleet(err) {
				st, lerr := cl.Layout(ctx, args[0])
				if lerr != nil {
					return err
				}
				if ok, err := printData(a.Out, output, st); ok {
					return err
				}
				saved := a.Err
				a.Err = a.Out
				a.printLayout(st)
				a.Err = saved
				return nil
			}
			if err != nil {
				return err
			}
			d := taskDetailView{taskView: viewTask(v.Task), Request: v.Request, Agents: make([]taskResultView, 0, len(v.Agents))}
			if len(v.Upgrade) > 0 && string(v.Upgrade) != "null" {
				d.Request = v.Upgrade // an upgrade task: its request is POST /api/agents/upgrade's
			}
			for _, r := range v.Agents {
				d.Agents = append(d.Agents, taskResultView{Agent: r.Agent, State: r.State, ExitCode: r.ExitCode, Msg: r.Msg,
					StartedAt: r.StartedAt, EndedAt: r.EndedAt, OutputHead: r.OutputHead, OutputTail: r.OutputTail, Dropped: r.Dropped, OutputBytes: r.OutputBytes})
			}
			if ok, err := printData(a.Out, output, d); ok {
				return err
			}
			hdr := newTable(a.Out)
			hdr.row("Task:", v.ID)
			hdr.row("State:", v.State+msgSuffix(v.Msg))
			hdr.row("Created:", stamp(v.CreatedAt)+" by "+orDash(v.CreatedBy))
			hdr.row("Finished:", stamp(v.FinishedAt))
			if len(d.Request) > 0 && string(d.Request) != "null" {
				hdr.row("Request:", string(d.Request))
			}
			_ = hdr.flush()
			fmt.Fprintln(a.Out)
			t := newTable(a.Out, "AGENT", "STATE", "EXIT", "TIME", "OUTPUT", "MSG")
			for _, r := range v.Agents {
				t.row(r.Agent, r.State, exitText(r), durationOf(r.StartedAt, r.EndedAt), firstLine(r.OutputHead, 60), orDash(r.Msg))
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(a.Out, countsLine(v.Task))
			return nil
		},
	}
	outputFlag(c, &output, fmtTable, fmtJSON, fmtYAML)
	return c
}

func msgSuffix(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

// firstLine is the first line of s, cut to n runes.
func firstLine(s string, n int) string {
	s = strings.TrimLeft(normalizeNewlines(s), "\n")
	line, _, more := strings.Cut(s, "\n")
	r := []rune(strings.TrimRight(line, "\r"))
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if more && strings.TrimSpace(s[len(line):]) != "" {
		return string(r) + " …"
	}
	return orDash(string(r))
}

func (a *App) tasksWatchCmd() *cobra.Command {
	var withOutput bool
	var output string
	c := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a fleet task or a layout live until it ends",
		Long: `Follow a running fleet task or layout through its event stream: a progress line on a
terminal (a line per finished agent otherwise), or every agent's output with --stream; then
the results (an upgrade has no output: --stream shows each agent's states). Ctrl-C stops
watching; the task goes on (cancel it with agentctl tasks cancel).
Exit 0 when every agent succeeded.`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completeTaskIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			v, err := cl.Task(ctx, args[0])
			if isNotFleet(err) {
				if _, lerr := cl.Layout(ctx, args[0]); lerr == nil {
					return a.watchLayout(cmd, cl, args[0], output)
				}
				return err
			}
			mode := showProgress
			switch {
			case withOutput && v.Kind == "upgrade":
				mode = showStates // no output: each agent's steps
			case withOutput:
				mode = showOutput
			}
			return a.followTask(ctx, cl, args[0], mode, false, output, false)
		},
	}
	c.Flags().BoolVar(&withOutput, "stream", false, "show each agent's output as it comes instead of a progress line")
	outputFlag(c, &output, "text", fmtJSON, fmtYAML)
	return c
}

// watchLayout follows a layout without cancelling it on Ctrl-C.
func (a *App) watchLayout(cmd *cobra.Command, cl *client.Client, id, output string) error {
	ctx, cancel := interruptible(cmd)
	defer cancel()
	fo := newFollower(a, cl, id, showOutput)
	fo.layout = true
	if err := fo.run(ctx); err != nil {
		if ctx.Err() != nil {
			return exitCode(ExitInterrupted)
		}
		return err
	}
	fo.finish(ctx, nil)
	st, err := cl.Layout(cmd.Context(), id)
	if err != nil {
		return err
	}
	if ok, err := printData(a.Out, output, st); ok {
		return err
	}
	a.printLayout(st)
	if layoutOK(st) {
		return nil
	}
	return exitCode(ExitRemote)
}

func (a *App) tasksCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "cancel ID",
		Short:             "Cancel a fleet task or a layout: nothing new starts, running commands are killed",
		Args:              args(1, 1),
		ValidArgsFunction: a.completeTaskIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			err = cl.CancelTask(cmd.Context(), args[0])
			if isNotFleet(err) {
				if lerr := cl.CancelLayout(cmd.Context(), args[0]); !isNotFleet(lerr) {
					err = lerr
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "Cancelled %s.\n", args[0])
			return nil
		},
	}
}

func (a *App) tasksOutputCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "output ID [AGENT]",
		Short: "Print the stored output of a fleet task: one agent's as is, or every agent's with its id in front",
		Args:  args(1, 2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return a.completeTaskIDs(cmd, args, toComplete)
			}
			return a.agentIDs(cmd, toComplete, "exec-agent"), noFiles
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			if len(args) == 2 {
				rc, err := cl.TaskOutput(ctx, args[0], args[1], 0)
				if err != nil {
					return err
				}
				defer rc.Close()
				_, err = io.Copy(a.Out, rc)
				return err
			}
			v, err := cl.Task(ctx, args[0])
			if err != nil {
				return err
			}
			fo := newFollower(a, cl, args[0], showOutput)
			sizes := map[string]int64{}
			states := map[string]string{}
			for _, r := range v.Agents {
				sizes[r.Agent] = r.OutputBytes - r.NotStored
				states[r.Agent] = r.State
			}
			fo.expect(states)
			fo.finish(ctx, sizes)
			return nil
		},
	}
}
