package cli

import (
	"context"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// Dynamic shell completion: values come from the server, with a short
// timeout and no retries, and nothing at all when it cannot be reached.

const completeTimeout = 3 * time.Second

type compFunc = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)

const noFiles = cobra.ShellCompDirectiveNoFileComp

// completionClient is a client that gives up fast.
func (a *App) completionClient(cmd *cobra.Command) (*client.Client, context.Context, context.CancelFunc, bool) {
	a.requestTimeout = completeTimeout
	ctx, err := a.context()
	if err != nil {
		return nil, nil, nil, false
	}
	c, err := client.New(client.Options{Servers: ctx.Servers(), Token: ctx.Token, CAFile: ctx.CAFile, Insecure: ctx.Insecure,
		Timeout: completeTimeout, Retries: -1})
	if err != nil {
		return nil, nil, nil, false
	}
	base := cmd.Context()
	if base == nil {
		base = context.Background()
	}
	cctx, cancel := context.WithTimeout(base, completeTimeout)
	return c, cctx, func() { cancel(); c.Close() }, true
}

// completionGet fetches what a completion offers through a client that
// gives up fast; false when the server cannot be asked or answers an error
// (the completion then offers nothing).
func completionGet[T any](a *App, cmd *cobra.Command, get func(*client.Client, context.Context) (T, error)) (T, bool) {
	var zero T
	cl, ctx, done, ok := a.completionClient(cmd)
	if !ok {
		return zero, false
	}
	defer done()
	v, err := get(cl, ctx)
	if err != nil {
		return zero, false
	}
	return v, true
}

// completionAgents lists the agents f selects (one page, the largest).
func (a *App) completionAgents(cmd *cobra.Command, f client.AgentFilter) ([]client.Agent, bool) {
	return completionGet(a, cmd, func(cl *client.Client, ctx context.Context) ([]client.Agent, error) {
		list, _, err := cl.Agents(ctx, f, client.MaxPage)
		return list, err
	})
}

// agentIDs returns the ids of agents starting with prefix.
func (a *App) agentIDs(cmd *cobra.Command, prefix, typ string) []string {
	list, ok := a.completionAgents(cmd, client.AgentFilter{Keyword: prefix, Type: typ})
	if !ok {
		return nil
	}
	var out []string
	for _, x := range list {
		if strings.HasPrefix(x.ID, prefix) {
			desc := x.Type
			if x.HostName != "" {
				desc += " on " + x.HostName
			}
			if !x.IsOnline {
				desc += " (offline)"
			}
			out = append(out, x.ID+"\t"+desc)
		}
	}
	return out
}

// afterDash reports whether "--" was typed before the word being
// completed. (cmd.ArgsLenAtDash is not reliable while completing: cobra
// parses the flags twice, the first time with a "--" of its own.)
func (a *App) afterDash() bool {
	if len(a.args) < 2 {
		return false
	}
	return slices.Contains(a.args[:len(a.args)-1], "--")
}

// completeAgentIDs completes agent ids: one (multi false) or several, and
// never after "--".
func (a *App) completeAgentIDs(multi bool, typ string) compFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if a.afterDash() {
			return nil, cobra.ShellCompDirectiveDefault
		}
		if !multi && len(args) > 0 {
			return nil, noFiles
		}
		return a.agentIDs(cmd, toComplete, typ), noFiles
	}
}

// completeAgentsThenFile completes agent ids, or local files once the
// word looks like a path (script run ID... FILE).
func (a *App) completeAgentsThenFile(typ string) compFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if a.afterDash() || toComplete == "" || strings.ContainsAny(toComplete, `/\.~`) {
			return nil, cobra.ShellCompDirectiveDefault
		}
		ids := a.agentIDs(cmd, toComplete, typ)
		if len(ids) == 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return ids, noFiles
	}
}

// completeSelector completes a label selector: keys, then k=value, term
// by term.
func (a *App) completeSelector(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	list, ok := a.completionAgents(cmd, client.AgentFilter{})
	if !ok {
		return nil, noFiles
	}
	values := map[string]map[string]bool{}
	for _, x := range list {
		for k, v := range x.Labels {
			if values[k] == nil {
				values[k] = map[string]bool{}
			}
			values[k][v] = true
		}
	}
	head, term := "", toComplete
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		head, term = toComplete[:i+1], toComplete[i+1:]
	}
	neg := strings.HasPrefix(term, "!") && !strings.Contains(term, "=")
	term = strings.TrimPrefix(term, "!")
	var out []string
	if k, v, ok := strings.Cut(term, "="); ok {
		op := "="
		if strings.HasSuffix(k, "!") {
			k, op = strings.TrimSuffix(k, "!"), "!="
		}
		for _, val := range slices.Sorted(maps.Keys(values[k])) {
			if strings.HasPrefix(val, v) {
				out = append(out, head+k+op+val)
			}
		}
		return out, noFiles | cobra.ShellCompDirectiveNoSpace
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if !strings.HasPrefix(k, term) {
			continue
		}
		if neg {
			out = append(out, head+"!"+k)
		} else {
			out = append(out, head+k+"=")
		}
	}
	return out, noFiles | cobra.ShellCompDirectiveNoSpace
}

func (a *App) completeAgentTypes(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	list, ok := a.completionAgents(cmd, client.AgentFilter{})
	if !ok {
		return nil, noFiles
	}
	types := map[string]bool{}
	for _, x := range list {
		if strings.HasPrefix(x.Type, toComplete) {
			types[x.Type] = true
		}
	}
	return slices.Sorted(maps.Keys(types)), noFiles
}

func (a *App) completeContexts(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	f, _, err := a.config()
	if err != nil {
		return nil, noFiles
	}
	var out []string
	for _, c := range f.Contexts {
		if strings.HasPrefix(c.Name, toComplete) {
			out = append(out, c.Name+"\t"+c.Server)
		}
	}
	return out, noFiles
}

// completeTaskIDs completes the ids of recent tasks.
func (a *App) completeTaskIDs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	list, ok := completionGet(a, cmd, func(cl *client.Client, ctx context.Context) ([]client.Task, error) {
		list, _, err := cl.Tasks(ctx, nil, 100)
		return list, err
	})
	if !ok {
		return nil, noFiles
	}
	var out []string
	for _, t := range list {
		if strings.HasPrefix(t.ID, toComplete) {
			out = append(out, t.ID+"\t"+t.State+" "+stamp(t.CreatedAt))
		}
	}
	return out, noFiles
}

// completeCp completes cp's arguments: ID:/remote/path through the ls
// route, agent ids (with ":") while no ":" is typed, local files else.
func (a *App) completeCp(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) >= 2 {
		return nil, noFiles
	}
	id, p, remote := strings.Cut(toComplete, ":")
	if !remote || strings.ContainsAny(id, `/\`) {
		if toComplete == "" || strings.ContainsAny(toComplete, `/\.~`) {
			return nil, cobra.ShellCompDirectiveDefault
		}
		var out []string
		for _, s := range a.agentIDs(cmd, toComplete, "exec-agent") {
			id, desc, _ := strings.Cut(s, "\t")
			out = append(out, id+":\t"+desc)
		}
		if len(out) == 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return out, cobra.ShellCompDirectiveNoSpace
	}
	cl, ctx, done, ok := a.completionClient(cmd)
	if !ok {
		return nil, noFiles
	}
	defer done()
	dir := p
	if !strings.HasSuffix(dir, "/") {
		dir = path.Dir(p)
		if !strings.Contains(p, "/") {
			dir = "."
		}
	}
	entries, err := cl.Ls(ctx, id, dir)
	if err != nil {
		return nil, noFiles
	}
	base := dir
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	if dir == "." {
		base = ""
	}
	var out []string
	for _, e := range entries {
		full := base + e.Name
		if !strings.HasPrefix(full, p) {
			continue
		}
		if e.IsDir {
			full += "/"
		}
		out = append(out, id+":"+full)
	}
	return out, noFiles | cobra.ShellCompDirectiveNoSpace
}
