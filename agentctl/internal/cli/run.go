package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// runFlags are the flags of run and script run.
type runFlags struct {
	selector    string
	os          string
	concurrency string
	maxErrors   string
	canary      int
	batchWait   time.Duration
	waitOffline time.Duration
	timeout     time.Duration
	user, auth  string
	workdir     string
	env         []string
	summary     bool
	fleet       bool
	tty         bool
	output      string
}

func (f *runFlags) add(c *cobra.Command, a *App, single bool) {
	f.addFleet(c, a)
	fl := c.Flags()
	fl.DurationVar(&f.timeout, "timeout", 0, "per-agent time limit of the command (default: the server's, 60s)")
	fl.StringVar(&f.user, "user", "", "run as this user")
	fl.StringVar(&f.auth, "auth", "", "how to become --user: su or sudo (default: the agent runs it as that user directly)")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory on the agent")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "environment variable K=V (repeatable)")
	fl.BoolVar(&f.summary, "summary", false, "several agents: no live output; at the end, agents grouped by identical output")
	if single {
		fl.BoolVar(&f.fleet, "fleet", false, "one agent: run it as a fleet task too (output prefixed, task kept in tasks ls)")
		fl.BoolVarP(&f.tty, "tty", "t", false, "one agent: run in a pseudo-terminal (line-buffered output, CRLF line ends)")
	}
	outputFlag(c, &f.output, "text", fmtJSON, fmtYAML)
	_ = c.RegisterFlagCompletionFunc("auth", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"su", "sudo"}, cobra.ShellCompDirectiveNoFileComp
	})
}

// addFleet adds the flags every fleet command has: which agents (-l,
// --os; IDs are arguments) and the rollout.
func (f *runFlags) addFleet(c *cobra.Command, a *App) {
	fl := c.Flags()
	fl.StringVarP(&f.selector, "selector", "l", "", "run on the exec-agents matching this label selector (k=v,k!=v,k,!k)")
	fl.StringVar(&f.os, "os", "", "only agents of this OS (with -l, or alone)")
	fl.StringVar(&f.concurrency, "concurrency", "", "at most N (or N%) agents at a time (default: all)")
	fl.StringVar(&f.maxErrors, "max-errors", "", "failures tolerated, N or N%; the next failure stops new launches (default: no limit)")
	fl.IntVar(&f.canary, "canary", 0, "run on N agents first; the rest only if all N succeed")
	fl.DurationVar(&f.batchWait, "batch-wait", 0, "run in batches of --concurrency with this pause between them")
	fl.DurationVar(&f.waitOffline, "wait-offline", 0, "wait this long for agents offline at the start")
	_ = c.RegisterFlagCompletionFunc("selector", a.completeSelector)
}

var limitRE = regexp.MustCompile(`^[0-9]+%?$`)

// checkFleet checks the flags of addFleet with the IDs given.
func (f *runFlags) checkFleet(c *cobra.Command, ids []string) error {
	switch {
	case len(ids) > 0 && (f.selector != "" || f.os != ""):
		return usagef(c, "give agent IDs or -l/--os, not both")
	case len(ids) == 0 && f.selector == "" && f.os == "":
		return usagef(c, "no agents: give IDs or -l SELECTOR")
	case f.concurrency != "" && !limitRE.MatchString(f.concurrency):
		return usagef(c, "--concurrency %q: want N or N%%", f.concurrency)
	case f.maxErrors != "" && !limitRE.MatchString(f.maxErrors):
		return usagef(c, "--max-errors %q: want N or N%%", f.maxErrors)
	case f.canary < 0 || f.batchWait < 0 || f.waitOffline < 0:
		return usagef(c, "negative --canary, --batch-wait or --wait-offline")
	}
	return nil
}

func (f *runFlags) check(c *cobra.Command, ids []string) error {
	if err := f.checkFleet(c, ids); err != nil {
		return err
	}
	switch {
	case f.auth != "" && f.auth != "su" && f.auth != "sudo":
		return usagef(c, "--auth %q: want su or sudo", f.auth)
	case f.auth != "" && f.user == "":
		return usagef(c, "--auth needs --user")
	case f.timeout < 0:
		return usagef(c, "negative --timeout")
	}
	for _, e := range f.env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return usagef(c, "--env %q: want K=V", e)
		}
	}
	return nil
}

func (f *runFlags) selectorOf(ids []string) client.Selector {
	if len(ids) > 0 {
		return client.Selector{IDs: ids}
	}
	return client.Selector{Labels: f.selector, OS: f.os}
}

func durationText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

func (a *App) runCmd() *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run [ID... | -l SELECTOR] -- CMD [ARG...]",
		Short: "Run a command on one agent (live output, remote exit code) or many (fleet task)",
		Long: `Run a command on exec-agents. The command follows "--"; its first word is a shell
command line on the agent (sh -c on Unix, cmd /C on Windows) and the other words are passed
as quoted arguments.

One agent (one ID, no -l): the output is shown as it is produced (stdout and stderr in one
stream, exact bytes; -t for a pseudo-terminal) and agentctl exits with the command's exit code
(124 when it hit --timeout). Several agents, or -l: a fleet task with rollout control; each
agent's output is shown line by line with its id in front (or grouped at the end with
--summary), then a table of results on stderr; exit 0 only if every agent succeeded.

Ctrl-C asks the server once to stop the command (kill it, or cancel the fleet task); a second
Ctrl-C leaves without waiting (the task is still being stopped: agentctl tasks watch ID).
The remote command gets no stdin.`,
		Example: `  agentctl run web-01 -- uname -a
  agentctl run web-01 -- 'systemctl restart nginx && systemctl is-active nginx'
  agentctl run -l role=web --concurrency 10% --max-errors 2 -- apt-get -y upgrade
  agentctl run a1 a2 a3 --summary -- cat /etc/os-release
  agentctl run -l env=prod -o json -- df -h /`,
		Args:              args(0, -1),
		ValidArgsFunction: a.completeAgentIDs(true, "exec-agent"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 {
				return usagef(cmd, "put the command after --: agentctl run ID -- CMD")
			}
			ids, argv := args[:dash], args[dash:]
			if len(argv) == 0 || strings.TrimSpace(argv[0]) == "" {
				return usagef(cmd, "no command after --")
			}
			if err := f.check(cmd, ids); err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			if len(ids) == 1 && !f.fleet {
				return a.runOne(cmd.Context(), cl, ids[0], argv, &f)
			}
			req := client.TaskRequest{Selector: f.selectorOf(ids), Cmd: argv[0], Args: argv[1:]}
			return a.runFleet(cmd.Context(), cl, req, &f)
		},
	}
	f.add(c, a, true)
	return c
}

// interrupter watches Ctrl-C while a remote task is followed: the first
// calls first (once; nil: the first one already leaves), the next cancels
// ctx (leave without waiting).
type interrupter struct {
	ctx      context.Context
	detached atomic.Bool
	stop     func()
}

// interrupts starts watching; stop ends it and waits for first to return
// (bounded by 30 s) unless the user left.
func (a *App) interrupts(ctx context.Context, first func(context.Context)) *interrupter {
	ctx, cancel := context.WithCancel(ctx)
	in := &interrupter{ctx: ctx}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt)
	var wg, firstDone sync.WaitGroup
	wg.Go(func() {
		n := 0
		for range sig {
			n++
			if n == 1 && first != nil {
				firstDone.Go(func() {
					fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
					defer fcancel()
					first(fctx)
				})
				continue
			}
			in.detached.Store(true)
			cancel()
		}
	})
	in.stop = func() {
		signal.Stop(sig)
		close(sig)
		wg.Wait()
		if !in.detached.Load() {
			firstDone.Wait()
		}
		cancel()
	}
	return in
}

// runView is the JSON of run and script run: one entry per agent.
type runView struct {
	TaskID string         `json:"task_id"`
	State  string         `json:"state"`
	Msg    string         `json:"msg"`
	Agents []runAgentView `json:"agents"`
	Counts client.Summary `json:"summary"`
}

type runAgentView struct {
	Agent       string      `json:"agent"`
	State       string      `json:"state"`
	ExitCode    int         `json:"exit_code"`
	Msg         string      `json:"msg"`
	StartedAt   client.Time `json:"started_at"`
	EndedAt     client.Time `json:"ended_at"`
	Output      string      `json:"output"`
	OutputBytes int64       `json:"output_bytes"`
}

// runOne runs a command on one agent through the exec routes: start,
// poll its output, read its status.
func (a *App) runOne(ctx context.Context, cl *client.Client, id string, argv []string, f *runFlags) error {
	req := client.ExecRequest{Cmd: argv[0], Args: argv[1:], Auth: f.auth, User: f.user, WorkDir: f.workdir, Env: f.env, Pipe: !f.tty}
	if f.timeout > 0 {
		req.Timeout = int(math.Ceil(f.timeout.Seconds()))
	}
	st, err := cl.StartExec(ctx, id, req)
	if err != nil {
		return err
	}
	var killed atomic.Bool
	in := a.interrupts(ctx, func(kctx context.Context) {
		fmt.Fprintf(a.Err, "\nagentctl: killing the command on %s (Ctrl-C again to leave it)\n", id)
		killed.Store(true)
		if err := cl.KillExec(kctx, id, st.PID); err != nil && !client.IsStatus(err, 404) {
			msg, _ := describe(err)
			fmt.Fprintf(a.Err, "agentctl: kill: %s\n", msg)
		}
	})
	defer in.stop()
	pollCtx := in.ctx
	var out io.Writer = a.Out
	var buf bytes.Buffer
	if f.output != "text" {
		out = &buf
	}
	delay, failures := 10*time.Millisecond, 0
	for {
		b, done, err := cl.Pty(pollCtx, id, st.PID)
		if err != nil {
			if in.detached.Load() {
				return a.detachedRun(id, st.ID)
			}
			var ce *client.ConnError
			if errors.As(err, &ce) && failures < 5 {
				failures++
				if err := backoff.Sleep(pollCtx, nil, time.Duration(failures)*time.Second); err != nil {
					return a.detachedRun(id, st.ID)
				}
				continue
			}
			return err
		}
		failures = 0
		if len(b) > 0 {
			if _, err := out.Write(b); err != nil {
				return err
			}
			delay = 10 * time.Millisecond
			continue
		}
		if done {
			break
		}
		if err := backoff.Sleep(pollCtx, nil, delay); err != nil {
			return a.detachedRun(id, st.ID)
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
	status, err := cl.ExecStatus(context.WithoutCancel(pollCtx), id, st.PID)
	if err != nil {
		return err
	}
	if f.output != "text" {
		v := runView{TaskID: st.ID, State: taskStateOf(status.State), Msg: status.Msg, Agents: []runAgentView{{
			Agent: id, State: status.State, ExitCode: status.Code, Msg: status.Msg, StartedAt: status.Begin, EndedAt: status.End,
			Output: buf.String(), OutputBytes: int64(buf.Len()),
		}}, Counts: summaryOf(status.State)}
		if _, err := printData(a.Out, f.output, v); err != nil {
			return err
		}
	}
	switch status.State {
	case "ok":
		return nil
	case "timed_out":
		fmt.Fprintf(a.Err, "agentctl: %s: the command hit its time limit%s — raise --timeout\n", id, limitText(f.timeout))
		return exitCode(124)
	case "lost":
		return &ExitError{Code: ExitRemote, Err: fmt.Errorf("%s: the command's result was lost: %s", id, status.Msg)}
	}
	if killed.Load() {
		return exitCode(ExitInterrupted)
	}
	if status.Msg != "" && status.Code == 0 {
		return &ExitError{Code: ExitRemote, Err: fmt.Errorf("%s: %s", id, status.Msg)}
	}
	if status.Code > 0 && status.Code < 256 {
		return exitCode(status.Code)
	}
	return exitCode(ExitRemote)
}

func limitText(d time.Duration) string {
	if d <= 0 {
		return " (the server's default, 60s)"
	}
	return " of " + d.String()
}

// summaryOf counts one agent's result.
func summaryOf(state string) client.Summary {
	s := client.Summary{Total: 1}
	switch state {
	case "ok":
		s.OK = 1
	case "failed":
		s.Failed = 1
	case "timed_out":
		s.TimedOut = 1
	case "lost":
		s.Lost = 1
	case "skipped":
		s.Skipped = 1
	case "running":
		s.Running = 1
	default:
		s.Pending = 1
	}
	return s
}

// taskStateOf maps a result state to the state of a one-agent task.
func taskStateOf(result string) string {
	switch result {
	case "ok":
		return "done"
	case "running", "pending":
		return result
	}
	return "failed"
}

func (a *App) detachedRun(agent, task string) error {
	fmt.Fprintf(a.Err, "agentctl: left task %s on %s; it is still being stopped\n", task, agent)
	return exitCode(ExitInterrupted)
}

// runFleet submits a fleet task and follows it to its end.
func (a *App) runFleet(ctx context.Context, cl *client.Client, req client.TaskRequest, f *runFlags) error {
	req.Auth, req.User, req.WorkDir, req.Env = f.auth, f.user, f.workdir, f.env
	req.Concurrency, req.MaxErrors, req.Canary = f.concurrency, f.maxErrors, f.canary
	req.Timeout, req.BatchWait, req.WaitOffline = durationText(f.timeout), durationText(f.batchWait), durationText(f.waitOffline)
	created, err := cl.CreateTask(ctx, req)
	if err != nil {
		return err
	}
	mode := showOutput
	if f.summary || f.output != "text" {
		mode = showNothing
	}
	if f.output == "text" {
		lost := ""
		if created.Lost > 0 {
			lost = fmt.Sprintf(", %d offline at the start", created.Lost)
		}
		fmt.Fprintf(a.Err, "task %s: %d agent(s)%s\n", created.ID, created.Agents, lost)
	}
	return a.followTask(ctx, cl, created.ID, mode, f.summary, f.output, true)
}

// followTask follows fleet task id to its end and reports: the table (or
// groups with summary) on stderr, or the JSON/YAML view. cancelOnInt:
// Ctrl-C cancels the task (else it just leaves).
func (a *App) followTask(ctx context.Context, cl *client.Client, id string, mode followMode, summary bool, output string, cancelOnInt bool) error {
	view, err := cl.Task(ctx, id)
	if err != nil {
		return err
	}
	fo := newFollower(a, cl, id, mode)
	if view.IsInstall() {
		fo.lineFmt = installLine
	}
	states := map[string]string{}
	for _, r := range view.Agents {
		states[r.Agent] = r.State
	}
	fo.expect(states)
	var cancelled atomic.Bool
	var first func(context.Context)
	if cancelOnInt {
		first = func(kctx context.Context) {
			cancelled.Store(true)
			fo.note(fmt.Sprintf("agentctl: cancelling task %s (Ctrl-C again to leave it)", id))
			if err := cl.CancelTask(kctx, id); err != nil && !client.IsStatus(err, 409) {
				msg, _ := describe(err)
				fo.note("agentctl: cancel: " + msg)
			}
		}
	}
	in := a.interrupts(ctx, first)
	err = fo.run(in.ctx)
	in.stop()
	if err != nil {
		if in.detached.Load() || errors.Is(err, context.Canceled) {
			fmt.Fprintf(a.Err, "agentctl: left task %s; follow it with agentctl tasks watch %s\n", id, id)
			return exitCode(ExitInterrupted)
		}
		return err
	}
	view, err = cl.Task(ctx, id)
	if err != nil {
		return err
	}
	sizes := map[string]int64{}
	for _, r := range view.Agents {
		sizes[r.Agent] = r.OutputBytes - r.NotStored
	}
	fo.finish(ctx, sizes)
	fo.finalStates(view.Agents)
	if output != "text" {
		v, err := a.runViewOf(ctx, cl, view)
		if err != nil {
			return err
		}
		if _, err := printData(a.Out, output, v); err != nil {
			return err
		}
	} else if summary {
		if err := a.printGroups(ctx, cl, view); err != nil {
			return err
		}
	} else {
		a.printResults(view)
	}
	switch {
	case cancelled.Load():
		return exitCode(ExitInterrupted)
	case view.State == "done" && view.Summary.OK == view.Summary.Total:
		return nil
	}
	return exitCode(ExitRemote)
}

// fullOutput returns an agent's whole output as far as the server keeps
// it: head and tail when nothing is between them, else the output route.
func fullOutput(ctx context.Context, cl *client.Client, task string, r client.AgentResult) (string, error) {
	if r.Dropped == 0 {
		return r.OutputHead + r.OutputTail, nil
	}
	rc, err := cl.TaskOutput(ctx, task, r.Agent, 0)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	return string(b), err
}

func (a *App) runViewOf(ctx context.Context, cl *client.Client, view client.TaskView) (runView, error) {
	v := runView{TaskID: view.ID, State: view.State, Msg: view.Msg, Agents: make([]runAgentView, 0, len(view.Agents)), Counts: view.Summary}
	for _, r := range view.Agents {
		out, err := fullOutput(ctx, cl, view.ID, r)
		if err != nil {
			return v, err
		}
		v.Agents = append(v.Agents, runAgentView{Agent: r.Agent, State: r.State, ExitCode: r.ExitCode, Msg: r.Msg,
			StartedAt: r.StartedAt, EndedAt: r.EndedAt, Output: normalizeNewlines(out), OutputBytes: r.OutputBytes})
	}
	return v, nil
}

// normalizeNewlines turns a pseudo-terminal's CRLF into LF.
func normalizeNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// maxTableRows is the size of fleet above which only the agents that did
// not succeed are listed.
const maxTableRows = 100

// printResults writes the results table and the counts to stderr.
func (a *App) printResults(view client.TaskView) {
	rows := view.Agents
	if len(rows) > maxTableRows {
		rows = slices.DeleteFunc(slices.Clone(rows), func(r client.AgentResult) bool { return r.State == "ok" })
	}
	if len(rows) > 0 {
		t := newTable(a.Err, "AGENT", "STATE", "EXIT", "TIME", "MSG")
		for _, r := range rows {
			t.row(r.Agent, r.State, exitText(r), durationOf(r.StartedAt, r.EndedAt), orDash(r.Msg))
		}
		_ = t.flush()
	}
	fmt.Fprintln(a.Err, countsLine(view.Task))
}

func exitText(r client.AgentResult) string {
	switch r.State {
	case "ok", "failed", "timed_out":
		return fmt.Sprint(r.ExitCode)
	}
	return "-"
}

func durationOf(from, to client.Time) string {
	if from.IsZero() || to.IsZero() {
		return "-"
	}
	return shortDuration(to.Sub(from.Time))
}

// countsLine sums a task up in one line.
func countsLine(t client.Task) string {
	s := t.Summary
	parts := []string{fmt.Sprintf("%d ok", s.OK)}
	for _, p := range []struct {
		n    int
		name string
	}{{s.Failed, "failed"}, {s.TimedOut, "timed out"}, {s.Lost, "lost"}, {s.Skipped, "skipped"}, {s.Running, "running"}, {s.Pending, "pending"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.name))
		}
	}
	line := fmt.Sprintf("task %s %s: %d agent(s): %s", t.ID, t.State, s.Total, strings.Join(parts, ", "))
	if t.Msg != "" {
		line += " — " + t.Msg
	}
	return line
}

// printGroups writes the agents grouped by identical outcome and output
// (stdout), then the counts (stderr).
func (a *App) printGroups(ctx context.Context, cl *client.Client, view client.TaskView) error {
	type group struct {
		agents []string
		state  string
		code   string
		output string
	}
	var groups []*group
	index := map[string]*group{}
	for _, r := range view.Agents {
		out, err := fullOutput(ctx, cl, view.ID, r)
		if err != nil {
			return err
		}
		out = normalizeNewlines(out)
		outcome := r.State
		if r.Msg != "" && r.State != "ok" {
			outcome += ": " + r.Msg
		}
		key := outcome + "\x00" + exitText(r) + "\x00" + out
		g := index[key]
		if g == nil {
			g = &group{state: outcome, code: exitText(r), output: out}
			index[key] = g
			groups = append(groups, g)
		}
		g.agents = append(g.agents, r.Agent)
	}
	slices.SortStableFunc(groups, func(x, y *group) int { return len(y.agents) - len(x.agents) })
	pal := a.palette(a.Out)
	for _, g := range groups {
		noun := "agents"
		if len(g.agents) == 1 {
			noun = "agent"
		}
		fmt.Fprintf(a.Out, "%s %s (exit %s): %s\n", pal.bold(fmt.Sprintf("== %d %s", len(g.agents), noun)), pal.state(g.state), g.code, strings.Join(g.agents, ", "))
		out := strings.TrimSuffix(g.output, "\n")
		if out == "" {
			fmt.Fprintln(a.Out, pal.dim("   (no output)"))
			continue
		}
		for line := range strings.SplitSeq(out, "\n") {
			fmt.Fprintf(a.Out, "   %s\n", line)
		}
	}
	fmt.Fprintln(a.Err, countsLine(view.Task))
	return nil
}
