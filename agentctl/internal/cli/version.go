package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/agentfleet/libagent/buildinfo"
)

// versionView is the JSON of agentctl version.
type versionView struct {
	Client struct {
		Version  string `json:"version"`
		Commit   string `json:"commit"`
		Date     string `json:"date"`
		Go       string `json:"go"`
		Platform string `json:"platform"`
	} `json:"client"`
	Server *serverView `json:"server"`
}

type serverView struct {
	URL        string `json:"url"`
	ID         string `json:"id"`
	Version    string `json:"version"`
	Agents     int    `json:"agents"`
	IsBlocking bool   `json:"is_blocking"`
}

func (a *App) versionCmd() *cobra.Command {
	var clientOnly bool
	var output string
	c := &cobra.Command{
		Use:   "version",
		Short: "Show agentctl's version and the server's",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v versionView
			v.Client.Version, v.Client.Commit, v.Client.Date = buildinfo.Version, buildinfo.Commit, buildinfo.Date
			v.Client.Go, v.Client.Platform = buildinfo.GoVersion(), runtime.GOOS+"/"+runtime.GOARCH
			var serverErr error
			if !clientOnly {
				cl, err := a.client()
				if err == nil {
					info, err := cl.ServerInfo(cmd.Context())
					if err == nil {
						v.Server = &serverView{URL: cl.Server(), ID: info.ID, Version: info.Version, Agents: info.Agents, IsBlocking: info.IsBlocking}
					}
					serverErr = err
				} else {
					serverErr = err
				}
			}
			if ok, err := printData(a.Out, output, v); ok {
				if err != nil {
					return err
				}
				return serverErr
			}
			fmt.Fprintln(a.Out, buildinfo.String("agentctl"))
			if v.Server != nil {
				s := v.Server
				fmt.Fprintf(a.Out, "agent-server %s at %s (cluster %s, %d agents connected)\n", s.Version, s.URL, s.ID, s.Agents)
			}
			return serverErr
		},
	}
	c.Flags().BoolVar(&clientOnly, "client", false, "only agentctl's version (no server needed)")
	outputFlag(c, &output, "text", fmtJSON, fmtYAML)
	return c
}
