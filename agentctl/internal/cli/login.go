package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentfleet/agentctl/internal/client"
	"github.com/agentfleet/agentctl/internal/config"
)

func (a *App) loginCmd() *cobra.Command {
	var name, caFile string
	var insecure, tokenStdin bool
	c := &cobra.Command{
		Use:   "login SERVER",
		Short: "Check a token against a server and save both as a context",
		Long: `Log in to SERVER (an http:// or https:// URL; several comma-separated URLs are the
servers of one cluster, tried in turn). The token is read from AGENTCTL_TOKEN, from stdin with
--token-stdin, or asked for without echo on a terminal. It is checked with GET /api/whoami (or
/api/info/server on servers older than scoped tokens) and saved, with the URL and the CA file,
as a context in the config file (mode 0600), which becomes the current one.`,
		Example: `  agentctl login https://fleet.example.com:13081
  echo "$TOKEN" | agentctl login http://127.0.0.1:13081 --token-stdin --name demo
  agentctl login https://10.0.0.5:13081 --ca-file ca.pem`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := config.Context{Server: args[0], CAFile: caFile, Insecure: insecure}
			servers := ctx.Servers()
			if len(servers) == 0 {
				return usagef(cmd, "SERVER is empty")
			}
			for i, s := range servers {
				u, err := client.ParseServer(s)
				if err != nil {
					return usageErr(cmd, err)
				}
				servers[i] = u.String()
			}
			ctx.Server = strings.Join(servers, ",")
			if name == "" {
				u, _ := client.ParseServer(servers[0])
				name = u.Host
			}
			if err := config.ValidName(name); err != nil {
				return usageErr(cmd, err)
			}
			ctx.Name = name
			tok, err := a.readToken(tokenStdin)
			if err != nil {
				return err
			}
			ctx.Token = tok
			cl, err := a.newClient(ctx)
			if err != nil {
				return err
			}
			defer cl.Close()
			who, err := checkToken(cmd, cl)
			if err != nil {
				return err
			}
			f, path, err := a.config()
			if err != nil {
				return err
			}
			f.Put(ctx)
			f.Current = ctx.Name
			if err := config.Save(path, f); err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "Logged in to %s %s; context %q saved in %s and made current.\n", cl.Server(), who, ctx.Name, path)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "context name (default: the server's host:port)")
	c.Flags().StringVar(&caFile, "ca-file", "", "PEM file of the CA that signed the server's certificate")
	c.Flags().BoolVar(&insecure, "insecure-skip-tls-verify", false, "do not check the server's certificate (tests only)")
	c.Flags().BoolVar(&tokenStdin, "token-stdin", false, "read the token from stdin")
	return c
}

// checkToken asks who the token is; an older server without /api/whoami
// is asked for its info instead (which needs a valid token too).
func checkToken(cmd *cobra.Command, cl *client.Client) (string, error) {
	ctx := cmd.Context()
	who, err := cl.WhoAmI(ctx)
	if err == nil {
		return "as " + describeWho(who), nil
	}
	if !client.IsRouteMissing(err) {
		return "", err
	}
	info, err := cl.ServerInfo(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("(agent-server %s, which predates /api/whoami: token accepted)", info.Version), nil
}

func describeWho(w client.WhoAmI) string {
	s := w.Name
	var parts []string
	if len(w.Scopes) > 0 {
		parts = append(parts, "scopes "+strings.Join(w.Scopes, ","))
	}
	if w.Selector != "" {
		parts = append(parts, "agents "+w.Selector)
	}
	if w.ReadOnly {
		parts = append(parts, "read-only")
	}
	if !w.ExpiresAt.IsZero() {
		parts = append(parts, "expires "+w.ExpiresAt.Local().Format(time.RFC3339))
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	return s
}

// readToken gets the token: AGENTCTL_TOKEN, stdin, or a prompt.
func (a *App) readToken(fromStdin bool) (string, error) {
	if t := a.Getenv("AGENTCTL_TOKEN"); t != "" && !fromStdin {
		return t, nil
	}
	var tok string
	if !fromStdin && a.IsTerminal(a.In) {
		fmt.Fprint(a.Err, "Token: ")
		f, _ := a.In.(*os.File)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.Err)
		if err != nil {
			return "", err
		}
		tok = string(b)
	} else {
		line, err := bufio.NewReader(io.LimitReader(a.In, 64<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		tok = line
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", &ExitError{Code: ExitUsage, Err: errors.New("no token given (AGENTCTL_TOKEN, --token-stdin, or type it at the prompt)")}
	}
	return tok, nil
}

func (a *App) whoamiCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "whoami",
		Short: "Show the token in use: name, scopes, agents it may reach, expiry",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			w, err := cl.WhoAmI(cmd.Context())
			if client.IsRouteMissing(err) {
				return &ExitError{Code: ExitRemote, Err: errors.New("the server has no /api/whoami (it predates scoped tokens; agentctl version shows its version)")}
			}
			if err != nil {
				return err
			}
			out := whoView{Server: cl.Server(), Name: w.Name, Scopes: w.Scopes, Selector: w.Selector, ExpiresAt: w.ExpiresAt, ReadOnly: w.ReadOnly}
			if out.Scopes == nil {
				out.Scopes = []string{}
			}
			if ok, err := printData(a.Out, output, out); ok {
				return err
			}
			fmt.Fprintf(a.Out, "%s at %s\n", describeWho(w), cl.Server())
			return nil
		},
	}
	outputFlag(c, &output, fmtTable, fmtJSON, fmtYAML)
	return c
}

// whoView is the JSON of agentctl whoami.
type whoView struct {
	Server    string      `json:"server"`
	Name      string      `json:"name"`
	Scopes    []string    `json:"scopes"`
	Selector  string      `json:"selector"`
	ExpiresAt client.Time `json:"expires_at"`
	ReadOnly  bool        `json:"read_only"`
}

func (a *App) contextCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "context",
		Aliases: []string{"contexts"},
		Short:   "List, switch and remove saved contexts (server + token)",
		Args:    args(0, 0),
	}
	var output string
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the contexts; * marks the current one",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, _, err := a.config()
			if err != nil {
				return err
			}
			views := make([]contextView, 0, len(f.Contexts))
			for _, x := range f.Contexts {
				views = append(views, contextView{Name: x.Name, Server: x.Server, CAFile: x.CAFile, Current: x.Name == f.Current})
			}
			if ok, err := printData(a.Out, output, views); ok {
				return err
			}
			t := newTable(a.Out, "CURRENT", "NAME", "SERVER", "CA FILE")
			for _, v := range views {
				cur := ""
				if v.Current {
					cur = "*"
				}
				t.row(cur, v.Name, v.Server, orDash(v.CAFile))
			}
			return t.flush()
		},
	}
	outputFlag(ls, &output, fmtTable, fmtJSON, fmtYAML)
	use := &cobra.Command{
		Use:               "use NAME",
		Short:             "Make a context the current one",
		Args:              args(1, 1),
		ValidArgsFunction: a.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, path, err := a.config()
			if err != nil {
				return err
			}
			if _, ok := f.Get(args[0]); !ok {
				return usagef(cmd, "no context %q (agentctl context ls)", args[0])
			}
			f.Current = args[0]
			if err := config.Save(path, f); err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "Switched to context %q.\n", args[0])
			return nil
		},
	}
	rm := &cobra.Command{
		Use:               "rm NAME",
		Aliases:           []string{"delete"},
		Short:             "Remove a context and its token from the config file",
		Args:              args(1, 1),
		ValidArgsFunction: a.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, path, err := a.config()
			if err != nil {
				return err
			}
			if !f.Delete(args[0]) {
				return usagef(cmd, "no context %q (agentctl context ls)", args[0])
			}
			if err := config.Save(path, f); err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "Removed context %q.\n", args[0])
			return nil
		},
	}
	c.AddCommand(ls, use, rm)
	return c
}

// contextView is the JSON of agentctl context ls (never the token).
type contextView struct {
	Name    string `json:"name"`
	Server  string `json:"server"`
	CAFile  string `json:"ca_file"`
	Current bool   `json:"current"`
}
