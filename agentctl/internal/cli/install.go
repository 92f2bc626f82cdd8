package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// installFlags are the flags of install.
type installFlags struct {
	runFlags
	uri, url, sha256, kind, dir string
	deps, passStdin             bool
}

func (a *App) installCmd() *cobra.Command {
	var f installFlags
	c := &cobra.Command{
		Use:   "install [ID... | -l SELECTOR] (--uri NAME | --url URL)",
		Short: "Install software (deb, rpm, tar, tar.gz, tar.bz2, zip, msi, exe) on exec-agents",
		Long: `Install a package on exec-agents: one of the server's repository (--uri, by name) or
one the agents download themselves (--url, http or https). deb and rpm go to dpkg / rpm
(--deps: apt-get / dnf / yum), archives are unpacked into --dir, msi and exe run silently.
--sha256 is checked by the agent before anything is installed (for --uri the repository's is
used by default). --auth su|sudo --user U runs the installer as U; the password, if one is
needed, is read from stdin with --pass-stdin (never from the command line).

The action log of each agent (download, install, file, done) is shown as it happens; then a
table of results on stderr. Exit 0 only if every agent's install succeeded. Ctrl-C cancels
the task: no new install starts; running ones go on to their end (an installer cut short
leaves a host worse off than a finished one).`,
		Example: `  agentctl install web-01 --url https://repo.example.com/app_1.2.3_amd64.deb --sha256 9f86…
  agentctl install -l role=web --canary 1 --concurrency 10% --uri app-1.2.3.tar.gz --dir /opt/app
  echo "$PW" | agentctl install db-01 --uri tool.rpm --auth sudo --user deploy --pass-stdin`,
		Args:              args(0, -1),
		ValidArgsFunction: a.completeAgentIDs(true, "exec-agent"),
		RunE: func(cmd *cobra.Command, ids []string) error {
			switch {
			case f.uri == "" && f.url == "":
				return usagef(cmd, "give --uri NAME (a package of the server's repository) or --url URL")
			case f.uri != "" && f.url != "":
				return usagef(cmd, "give --uri or --url, not both")
			case f.passStdin && f.auth == "":
				return usagef(cmd, "--pass-stdin needs --auth")
			}
			if err := f.check(cmd, ids); err != nil {
				return err
			}
			if len(f.env) > 0 || f.workdir != "" {
				return usagef(cmd, "--env and --workdir do not apply to installs")
			}
			req := client.InstallRequest{URI: f.uri, URL: f.url, SHA256: f.sha256, Kind: f.kind, Dir: f.dir, Deps: f.deps,
				Auth: f.auth, User: f.user, Concurrency: f.concurrency, MaxErrors: f.maxErrors, Canary: f.canary,
				BatchWait: durationText(f.batchWait), WaitOffline: durationText(f.waitOffline)}
			if f.timeout > 0 {
				req.Timeout = int(math.Ceil(f.timeout.Seconds()))
			}
			if len(ids) == 1 {
				req.ID = ids[0]
			} else {
				sel := f.selectorOf(ids)
				req.Selector = &sel
			}
			if f.passStdin {
				line, err := bufio.NewReader(a.In).ReadString('\n')
				if err != nil && line == "" {
					return usagef(cmd, "--pass-stdin: no password on stdin")
				}
				req.Pass = "$0$" + strings.TrimRight(line, "\r\n")
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			created, err := cl.InstallRun(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.output == "text" {
				fmt.Fprintf(a.Err, "install %s: %d agent(s)\n", created.ID, created.Agents)
			}
			mode := showOutput
			if f.summary || f.output != "text" {
				mode = showNothing
			}
			return a.followTask(cmd.Context(), cl, created.ID, mode, f.summary, f.output, true)
		},
	}
	f.add(c, a, false)
	fl := c.Flags()
	fl.StringVar(&f.uri, "uri", "", "a package of the server's repository, by name")
	fl.StringVar(&f.url, "url", "", "a package the agents download (http or https)")
	fl.StringVar(&f.sha256, "sha256", "", "the package's sha256, checked by the agent before installing")
	fl.StringVar(&f.kind, "kind", "", "the package type when the name does not say it: deb, rpm, tar, tar.gz, tar.bz2, zip, msi, exe")
	fl.StringVar(&f.dir, "dir", "", "where archives are unpacked (required for them), msi and exe install")
	fl.BoolVar(&f.deps, "deps", false, "install dependencies too (apt-get, dnf or yum instead of dpkg or rpm)")
	fl.BoolVar(&f.passStdin, "pass-stdin", false, "read the su/sudo password from stdin (one line)")
	fl.Lookup("timeout").Usage = "per-agent time limit of the whole install, download included (default: 5m)"
	fl.Lookup("auth").Usage = "how to become --user for the installer: su or sudo"
	_ = fl.MarkHidden("env")
	_ = fl.MarkHidden("workdir")
	return c
}

// installLine renders one action of the action log (a JSON line of the
// task's output) for people; other lines are left as they are.
func installLine(line []byte) []byte {
	var act struct {
		Action, Name, Msg string
		OK                bool
	}
	if json.Unmarshal(line, &act) != nil || act.Action == "" {
		return line
	}
	s := fmt.Sprintf("%-8s %s", act.Action, act.Name)
	if !act.OK {
		s += "  FAILED: " + act.Msg
	} else if act.Msg != "" {
		s += "  (" + act.Msg + ")"
	}
	return []byte(s)
}
