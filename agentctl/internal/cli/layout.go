package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// maxLayoutArchive is the server's default archive limit.
const maxLayoutArchive = 256 << 20

// PackLayout makes a tar.gz of the regular files under dir, which must
// hold main.yaml or main.json; skipped lists what is left out (links,
// special files).
func PackLayout(dir string) (archive []byte, skipped []string, err error) {
	hasMain := false
	for _, m := range []string{"main.yaml", "main.yml", "main.json"} {
		if fi, err := os.Stat(filepath.Join(dir, m)); err == nil && fi.Mode().IsRegular() {
			hasMain = true
		}
	}
	if !hasMain {
		return nil, nil, fmt.Errorf("%s has no main.yaml or main.json", dir)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()})
		case !d.Type().IsRegular():
			skipped = append(skipped, p)
			return nil
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(tw, io.LimitReader(f, fi.Size())); err != nil {
			return err
		}
		if buf.Len() > maxLayoutArchive {
			return fmt.Errorf("over %d bytes packed", maxLayoutArchive)
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	return buf.Bytes(), skipped, nil
}

func (a *App) layoutCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "layout",
		Short: "Run orchestration layouts (steps across agents)",
		Args:  args(0, 0),
	}
	var r client.LayoutRequest
	var selector, osName, output string
	run := &cobra.Command{
		Use:   "run DIR|ARCHIVE [ID...] [-l SELECTOR]",
		Short: "Run a layout (a folder or a tar/tar.gz with main.yaml) on agents and follow it",
		Long: `Run a layout: a folder (packed as tar.gz on the fly) or a .tar/.tar.gz/.tgz archive with
main.yaml (or main.json) and the files it pushes. The agents are the IDs given or the online
exec-agents matching -l. The steps' output is shown as it comes, then a table of each agent's
steps; exit 0 when every step on every agent succeeded. Ctrl-C cancels the layout (a second
Ctrl-C leaves it running).`,
		Example: `  agentctl layout run ./deploy -l role=web --mode evenodd
  agentctl layout run deploy.tar.gz web-01 web-02 --continue`,
		Args: args(1, -1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return nil, cobra.ShellCompDirectiveDefault
			}
			return a.agentIDs(cmd, toComplete, "exec-agent"), noFiles
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			src, ids := args[0], args[1:]
			switch {
			case len(ids) > 0 && (selector != "" || osName != ""):
				return usagef(cmd, "give agent IDs or -l/--os, not both")
			case len(ids) == 0 && selector == "" && osName == "":
				return usagef(cmd, "no agents: give IDs or -l SELECTOR")
			case r.Mode != "sequence" && r.Mode != "parallel" && r.Mode != "evenodd":
				return usagef(cmd, "--mode %q: want sequence, parallel or evenodd", r.Mode)
			case r.Concurrency != "" && !limitRE.MatchString(r.Concurrency) || r.MaxErrors != "" && !limitRE.MatchString(r.MaxErrors):
				return usagef(cmd, "--concurrency and --max-errors: want N or N%%")
			}
			var archive []byte
			name := filepath.Base(src)
			fi, err := os.Stat(src)
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			if fi.IsDir() {
				var skipped []string
				archive, skipped, err = PackLayout(src)
				if err != nil {
					return &ExitError{Code: ExitUsage, Err: err}
				}
				for _, s := range skipped {
					fmt.Fprintf(a.Err, "agentctl: %s left out of the layout (not a regular file)\n", s)
				}
				name += ".tar.gz"
			} else {
				if fi.Size() > maxLayoutArchive {
					return usagef(cmd, "%s has %d bytes: the server takes at most %d", src, fi.Size(), maxLayoutArchive)
				}
				if archive, err = os.ReadFile(src); err != nil {
					return &ExitError{Code: ExitUsage, Err: err}
				}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(ids) == 0 {
				on := true
				list, _, err := cl.Agents(ctx, client.AgentFilter{Labels: selector, OS: osName, Type: "exec-agent", Online: &on}, 0)
				if err != nil {
					return err
				}
				if len(list) == 0 {
					return &ExitError{Code: ExitRemote, Err: errors.New("no online exec-agent matches the selector (agentctl agents ls -l ...)")}
				}
				for _, x := range list {
					ids = append(ids, x.ID)
				}
			}
			r.IDs = ids
			id, err := cl.RunLayout(ctx, r, name, archive)
			if err != nil {
				return err
			}
			if output == "text" {
				fmt.Fprintf(a.Err, "layout %s: %d agent(s), mode %s\n", id, len(ids), r.Mode)
			}
			return a.followLayout(ctx, cl, id, output)
		},
	}
	fl := run.Flags()
	fl.StringVarP(&selector, "selector", "l", "", "the online exec-agents matching this label selector")
	fl.StringVar(&osName, "os", "", "only agents of this OS")
	fl.StringVar(&r.Mode, "mode", "sequence", "sequence (one agent after the other), parallel, or evenodd (two waves)")
	fl.BoolVar(&r.Continue, "continue", false, "go on with the next agents after one failed")
	fl.StringVar(&r.User, "user", "", "default user of the steps")
	fl.StringVar(&r.Auth, "auth", "", "default auth of the steps: su or sudo")
	fl.StringVar(&r.Concurrency, "concurrency", "", "at most N (or N%) agents at a time")
	fl.StringVar(&r.MaxErrors, "max-errors", "", "failures tolerated, N or N%")
	outputFlag(run, &output, "text", fmtJSON, fmtYAML)
	_ = run.RegisterFlagCompletionFunc("selector", a.completeSelector)
	_ = run.RegisterFlagCompletionFunc("mode", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"sequence", "parallel", "evenodd"}, noFiles
	})
	c.AddCommand(run)
	return c
}

// layoutOK reports whether a layout ended with every step successful.
func layoutOK(st client.LayoutStatus) bool {
	if st.State != "done" {
		return false
	}
	for _, n := range st.Nodes {
		if !n.OK {
			return false
		}
	}
	return true
}

// followLayout follows a layout to its end and shows its steps.
func (a *App) followLayout(ctx context.Context, cl *client.Client, id, output string) error {
	mode := showOutput
	if output != "text" {
		mode = showNothing
	}
	fo := newFollower(a, cl, id, mode)
	fo.layout = true
	var cancelled atomic.Bool
	in := a.interrupts(ctx, func(kctx context.Context) {
		cancelled.Store(true)
		fo.note(fmt.Sprintf("agentctl: cancelling layout %s (Ctrl-C again to leave it)", id))
		if err := cl.CancelLayout(kctx, id); err != nil && !client.IsStatus(err, 409) {
			msg, _ := describe(err)
			fo.note("agentctl: cancel: " + msg)
		}
	})
	err := fo.run(in.ctx)
	in.stop()
	if err != nil {
		if in.detached.Load() || errors.Is(err, context.Canceled) {
			fmt.Fprintf(a.Err, "agentctl: left layout %s; see it with agentctl tasks get %s\n", id, id)
			return exitCode(ExitInterrupted)
		}
		return err
	}
	fo.finish(ctx, nil)
	st, err := cl.Layout(ctx, id)
	if err != nil {
		return err
	}
	if ok, err := printData(a.Out, output, st); ok {
		if err != nil {
			return err
		}
	} else {
		a.printLayout(st)
	}
	switch {
	case cancelled.Load():
		return exitCode(ExitInterrupted)
	case layoutOK(st):
		return nil
	}
	return exitCode(ExitRemote)
}

// printLayout writes a layout's steps per agent to stderr.
func (a *App) printLayout(st client.LayoutStatus) {
	t := newTable(a.Err, "AGENT", "STEP", "STATE", "EXIT", "MSG")
	for _, n := range st.Nodes {
		if len(n.Steps) == 0 {
			t.row(n.ID, "-", n.State, "-", orDash(n.Msg))
		}
		for _, s := range n.Steps {
			code := "-"
			if s.State != "skipped" && s.State != "pending" && !s.Skipped {
				code = fmt.Sprint(s.Code)
			}
			t.row(n.ID, s.Name, s.State, code, orDash(strings.TrimSpace(s.Msg)))
		}
	}
	_ = t.flush()
	line := fmt.Sprintf("layout %s %s: %d/%d agent(s) finished", st.ID, st.State, st.FinishedCount, st.TotalCount)
	if st.Msg != "" {
		line += " — " + st.Msg
	}
	fmt.Fprintln(a.Err, line)
}
