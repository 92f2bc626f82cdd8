package cli

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// agentView is the JSON of an agent in agentctl's output (agents ls,
// agents get): the server's names, times in RFC 3339.
type agentView struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Version     string            `json:"version"`
	HostName    string            `json:"host_name"`
	IP          string            `json:"ip"`
	MAC         string            `json:"mac"`
	OS          string            `json:"os"`
	Platform    string            `json:"platform"`
	Arch        string            `json:"arch"`
	IsOnline    bool              `json:"is_online"`
	IsBusy      bool              `json:"is_busy"`
	Labels      map[string]string `json:"labels"`
	FirstSeen   client.Time       `json:"first_seen"`
	LastSeen    client.Time       `json:"last_seen"`
	ConnectedAt client.Time       `json:"connected_at"`
	Member      string            `json:"member,omitempty"` // in a cluster: the member holding the session
}

// agentStatus is the STATUS column: offline, online, or in a cluster
// online@<member holding the session>.
func agentStatus(x client.Agent) string {
	switch {
	case !x.IsOnline:
		return "offline"
	case x.Member != "":
		return "online@" + x.Member
	}
	return "online"
}

func viewAgent(x client.Agent) agentView {
	v := agentView{ID: x.ID, Type: x.Type, Version: x.Version, HostName: x.HostName, IP: x.IP, MAC: x.MAC, OS: x.OS,
		Platform: x.Platform, Arch: x.Arch, IsOnline: x.IsOnline, IsBusy: x.IsBusy, Labels: x.Labels,
		FirstSeen: x.FirstSeen, LastSeen: x.LastSeen, ConnectedAt: x.ConnectedAt, Member: x.Member}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	return v
}

func (a *App) agentsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "agents",
		Aliases: []string{"agent"},
		Short:   "List agents, show one, set its labels",
		Args:    args(0, 0),
	}
	ls := a.agentsLsCmd()
	c.AddCommand(ls, a.agentsGetCmd(), a.agentsLabelCmd())
	// "agentctl agents" alone lists, like "agents ls".
	c.RunE = ls.RunE
	c.Flags().AddFlagSet(ls.Flags())
	c.PreRunE = ls.PreRunE
	return c
}

func (a *App) agentsLsCmd() *cobra.Command {
	var f client.AgentFilter
	var online, offline bool
	var output string
	var limit int
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List agents (all pages), filtered by labels, type, OS, keyword, online state",
		Example: `  agentctl agents ls -l env=prod,role=web --online
  agentctl agents ls --type exec-agent -o json | jq -r '.[].id'`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if online && offline {
				return usagef(cmd, "--online and --offline exclude each other")
			}
			if online || offline {
				f.Online = &online
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			list, total, err := cl.Agents(cmd.Context(), f, limit)
			if err != nil {
				return err
			}
			views := make([]agentView, len(list))
			for i, x := range list {
				views[i] = viewAgent(x)
			}
			if ok, err := printData(a.Out, output, views); ok {
				return err
			}
			now := time.Now()
			var t *table
			if output == fmtWide {
				t = newTable(a.Out, "ID", "TYPE", "VERSION", "STATUS", "OS/ARCH", "PLATFORM", "HOST", "IP", "MAC", "LAST SEEN", "CONNECTED", "BUSY", "LABELS")
			} else {
				t = newTable(a.Out, "ID", "TYPE", "VERSION", "STATUS", "OS/ARCH", "IP", "LAST SEEN", "LABELS")
			}
			for _, x := range list {
				status := agentStatus(x)
				if output == fmtWide {
					busy := "no"
					if x.IsBusy {
						busy = "yes"
					}
					t.row(x.ID, x.Type, x.Version, status, x.OS+"/"+x.Arch, orDash(x.Platform), orDash(x.HostName), orDash(x.IP), orDash(x.MAC),
						ago(x.LastSeen, now), ago(x.ConnectedAt, now), busy, labelsText(x.Labels))
				} else {
					t.row(x.ID, x.Type, x.Version, status, x.OS+"/"+x.Arch, orDash(x.IP), ago(x.LastSeen, now), labelsText(x.Labels))
				}
			}
			if err := t.flush(); err != nil {
				return err
			}
			if limit > 0 && total > len(list) {
				fmt.Fprintf(a.Err, "(%d of %d agents; --limit 0 for all)\n", len(list), total)
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVarP(&f.Labels, "selector", "l", "", "label selector: k=v, k!=v, k, !k, comma-separated (all must hold)")
	fl.StringVar(&f.Type, "type", "", "agent type (exec-agent, metrics-agent, ...)")
	fl.StringVar(&f.OS, "os", "", "operating system (linux, windows, darwin)")
	fl.StringVar(&f.Keyword, "keyword", "", "part of the id, IP or MAC")
	fl.BoolVar(&online, "online", false, "only connected agents")
	fl.BoolVar(&offline, "offline", false, "only disconnected agents")
	fl.IntVar(&limit, "limit", 0, "at most this many agents (0: all)")
	outputFlag(c, &output, fmtTable, fmtWide, fmtJSON, fmtYAML)
	_ = c.RegisterFlagCompletionFunc("selector", a.completeSelector)
	_ = c.RegisterFlagCompletionFunc("type", a.completeAgentTypes)
	return c
}

func (a *App) agentsGetCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:               "get ID",
		Short:             "Show one agent",
		Args:              args(1, 1),
		ValidArgsFunction: a.completeAgentIDs(false, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			x, err := cl.Agent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			v := viewAgent(x)
			if ok, err := printData(a.Out, output, v); ok {
				return err
			}
			now := time.Now()
			status := "offline"
			if x.IsOnline {
				status = "online since " + stamp(x.ConnectedAt)
				if x.Member != "" {
					status += ", at cluster member " + x.Member
				}
			}
			t := newTable(a.Out)
			for _, kv := range [][2]string{
				{"ID:", x.ID}, {"Type:", x.Type + " " + x.Version}, {"Status:", status}, {"Busy:", fmt.Sprint(x.IsBusy)},
				{"Host:", orDash(x.HostName)}, {"OS:", x.OS + "/" + x.Arch + " " + x.Platform}, {"IP:", orDash(x.IP)}, {"MAC:", orDash(x.MAC)},
				{"First seen:", stamp(x.FirstSeen)}, {"Last seen:", stamp(x.LastSeen) + " (" + ago(x.LastSeen, now) + " ago)"},
				{"Labels:", labelsText(x.Labels)},
			} {
				t.row(kv[0], kv[1])
			}
			return t.flush()
		},
	}
	outputFlag(c, &output, fmtTable, fmtJSON, fmtYAML)
	return c
}

// labelKey is what the server accepts as a label key.
var labelKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

// ParseLabelOps reads `k=v` (set) and `k-` (remove) arguments.
func ParseLabelOps(ops []string) (set map[string]string, del []string, err error) {
	set = map[string]string{}
	for _, op := range ops {
		if k, v, ok := strings.Cut(op, "="); ok {
			if !labelKey.MatchString(k) {
				return nil, nil, fmt.Errorf("label %q: key %q is not a valid label key (letters, digits, . _ / -)", op, k)
			}
			set[k] = v
			continue
		}
		if k, ok := strings.CutSuffix(op, "-"); ok && labelKey.MatchString(k) {
			del = append(del, k)
			continue
		}
		return nil, nil, fmt.Errorf("label %q: want key=value to set or key- to remove", op)
	}
	for _, k := range del {
		if _, ok := set[k]; ok {
			return nil, nil, fmt.Errorf("label %q is both set and removed", k)
		}
	}
	return set, del, nil
}

func (a *App) agentsLabelCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "label ID KEY=VALUE... KEY-...",
		Short: "Set (k=v) and remove (k-) an agent's labels",
		Long: `Set and remove labels of an agent. The server replaces an agent's labels as a whole, so
agentctl reads them, applies the changes and writes them back; the labels after the change are
printed. Labels an agent sends in its config replace these at its next connection.`,
		Example: `  agentctl agents label web-01 env=prod role=web
  agentctl agents label web-01 role-`,
		Args:              args(2, -1),
		ValidArgsFunction: a.completeAgentIDs(true, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, del, err := ParseLabelOps(args[1:])
			if err != nil {
				return usageErr(cmd, err)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			x, err := cl.Agent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			labels := maps.Clone(x.Labels)
			if labels == nil {
				labels = map[string]string{}
			}
			maps.Copy(labels, set)
			for _, k := range del {
				delete(labels, k)
			}
			if err := cl.SetLabels(cmd.Context(), args[0], labels); err != nil {
				return err
			}
			if ok, err := printData(a.Out, output, labels); ok {
				return err
			}
			keys := slices.Sorted(maps.Keys(labels))
			if len(keys) == 0 {
				fmt.Fprintf(a.Out, "%s has no labels\n", args[0])
			}
			for _, k := range keys {
				fmt.Fprintf(a.Out, "%s=%s\n", k, labels[k])
			}
			return nil
		},
	}
	outputFlag(c, &output, fmtTable, fmtJSON, fmtYAML)
	return c
}
