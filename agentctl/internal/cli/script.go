package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// scriptTypes are the interpreters the API knows.
var scriptTypes = []string{"sh", "bash", "python", "python3", "bat", "powershell", "php", "lua"}

// maxFleetScript is the largest script a fleet task carries inline.
const maxFleetScript = 64 << 10

// Interpreter picks a script's interpreter: the shebang's program, else
// the file extension, else sh.
func Interpreter(name string, script []byte) string {
	line, _, _ := bytes.Cut(script, []byte("\n"))
	if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("#!")); ok {
		fields := strings.Fields(string(rest))
		if len(fields) > 0 {
			prog := filepath.Base(strings.ReplaceAll(fields[0], `\`, "/"))
			if prog == "env" && len(fields) > 1 {
				prog = fields[1]
				if prog == "-S" && len(fields) > 2 {
					prog = fields[2]
				}
			}
			prog = strings.TrimSuffix(strings.ToLower(prog), ".exe")
			switch {
			case slices.Contains(scriptTypes, prog):
				return prog
			case prog == "pwsh":
				return "powershell"
			case strings.HasPrefix(prog, "python3"):
				return "python3"
			case prog == "dash" || prog == "ash":
				return "sh"
			}
		}
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".bash":
		return "bash"
	case ".py":
		return "python3"
	case ".ps1":
		return "powershell"
	case ".php":
		return "php"
	case ".lua":
		return "lua"
	case ".bat", ".cmd":
		return "bat"
	}
	return "sh"
}

func (a *App) scriptCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "script",
		Short: "Run a local script on agents",
		Args:  args(0, 0),
	}
	var f runFlags
	var interp string
	run := &cobra.Command{
		Use:   "run [ID... | -l SELECTOR] FILE [-- ARG...]",
		Short: "Run a local script file on one agent or many",
		Long: `Run a script file from this machine on exec-agents. The interpreter is --interpreter, else
the script's #! line, else its extension (.sh .bash .py .ps1 .php .lua .bat), else sh.
Arguments after -- are passed to the script.

One agent: the script is uploaded (MD5-checked), run, removed, and its output printed at
the end; agentctl exits with its exit code. Several agents or -l: a fleet task with the script
inline (at most 64 KiB; not bat), output and results as for agentctl run.`,
		Example: `  agentctl script run web-01 ./check.sh -- --verbose
  agentctl script run -l role=db --concurrency 1 ./backup.py`,
		Args:              args(1, -1),
		ValidArgsFunction: a.completeAgentsThenFile("exec-agent"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, scriptArgs := args, []string(nil)
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				pos, scriptArgs = args[:dash], args[dash:]
			}
			file := pos[len(pos)-1]
			ids := pos[:len(pos)-1]
			if err := f.check(cmd, ids); err != nil {
				return err
			}
			script, err := os.ReadFile(file)
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			typ := interp
			if typ == "" {
				typ = Interpreter(file, script)
			} else if !slices.Contains(scriptTypes, typ) {
				return usagef(cmd, "--interpreter %q: want one of %s", typ, strings.Join(scriptTypes, ", "))
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			if len(ids) == 1 && !f.fleet {
				return a.scriptOne(cmd.Context(), cl, ids[0], filepath.Base(file), script, typ, scriptArgs, &f)
			}
			switch {
			case typ == "bat":
				return usagef(cmd, "bat scripts run on one agent at a time (fleet tasks run scripts inline, which cmd cannot)")
			case len(script) > maxFleetScript:
				return usagef(cmd, "%s has %d bytes: a fleet task carries at most %d (upload it with agentctl cp and run it with agentctl run)", file, len(script), maxFleetScript)
			}
			req := client.TaskRequest{Selector: f.selectorOf(ids), Script: string(script), Type: typ, Args: scriptArgs}
			return a.runFleet(cmd.Context(), cl, req, &f)
		},
	}
	f.add(run, a, true)
	run.Flags().StringVar(&interp, "interpreter", "", "interpreter: "+strings.Join(scriptTypes, ", "))
	run.Flags().Lookup("tty").Hidden = true
	c.AddCommand(run)
	return c
}

// scriptOne runs a script on one agent through the script route.
func (a *App) scriptOne(ctx context.Context, cl *client.Client, id, name string, script []byte, typ string, scriptArgs []string, f *runFlags) error {
	req := client.ScriptRequest{Type: typ, Args: scriptArgs, Auth: f.auth, User: f.user, WorkDir: f.workdir, Env: f.env}
	if f.timeout > 0 {
		req.Timeout = int(math.Ceil(f.timeout.Seconds()))
	}
	ctx, cancel := notifyContext(ctx)
	defer cancel()
	res, err := cl.RunScript(ctx, id, name, script, req)
	if err != nil {
		return err
	}
	if f.output != "text" {
		v := runView{TaskID: res.ID, State: taskStateOf(res.State), Msg: res.Msg, Agents: []runAgentView{{
			Agent: id, State: res.State, ExitCode: res.Code, Msg: res.Msg, StartedAt: res.Begin, EndedAt: res.End,
			Output: normalizeNewlines(string(res.Data)), OutputBytes: res.OutputBytes,
		}}, Counts: summaryOf(res.State)}
		if _, err := printData(a.Out, f.output, v); err != nil {
			return err
		}
	} else if _, err := io.WriteString(a.Out, normalizeNewlines(string(res.Data))); err != nil {
		// The script route runs scripts in a pseudo-terminal: its CRLF
		// line ends are not the script's.
		return err
	}
	switch {
	case res.Running:
		return &ExitError{Code: ExitRemote, Err: fmt.Errorf("%s: the script still runs after its time limit (task %s)", id, res.ID)}
	case res.State == "ok":
		return nil
	case res.State == "timed_out":
		fmt.Fprintf(a.Err, "agentctl: %s: the script hit its time limit%s — raise --timeout\n", id, limitText(f.timeout))
		return exitCode(124)
	case res.Code > 0 && res.Code < 256:
		return exitCode(res.Code)
	case res.Msg != "":
		return &ExitError{Code: ExitRemote, Err: fmt.Errorf("%s: %s", id, res.Msg)}
	}
	return exitCode(ExitRemote)
}
