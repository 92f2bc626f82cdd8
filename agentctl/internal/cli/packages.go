package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

func (a *App) packagesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "packages",
		Aliases: []string{"package", "pkg"},
		Short:   "List, push, download and remove the packages of the server's repository",
		Long: `The server keeps a repository of packages (deb, rpm, tar, tar.gz, tar.bz2, zip, msi, exe, and
agent binaries) that installs and agent self-updates take from it. Every package is stored
with its sha256; push sends the file's own so that the server refuses a damaged upload, and
get checks the download against the server's.`,
		Args: args(0, 0),
	}
	c.AddCommand(a.packagesLsCmd(), a.packagesPushCmd(), a.packagesGetCmd(), a.packagesRmCmd())
	return c
}

// packageView is a package in agentctl's JSON output.
type packageView struct {
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`
	Size    int64       `json:"size"`
	SHA256  string      `json:"sha256"`
	Created client.Time `json:"created"`
}

func viewOf(p client.Package) packageView {
	return packageView{Name: p.Name, Kind: p.Kind, Size: p.Size, SHA256: p.SHA256, Created: p.Created}
}

func (a *App) packagesLsCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the packages, by name",
		Example: `  agentctl packages ls
  agentctl packages ls -o json`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			list, err := cl.Packages(cmd.Context())
			if err != nil {
				return err
			}
			views := make([]packageView, len(list.Packages))
			for i, p := range list.Packages {
				views[i] = viewOf(p)
			}
			if ok, err := printData(a.Out, output, views); ok {
				return err
			}
			t := newTable(a.Out, "NAME", "KIND", "SIZE", "SHA256", "CREATED")
			for _, p := range list.Packages {
				sum := p.SHA256
				if output != fmtWide && len(sum) > 12 {
					sum = sum[:12]
				}
				t.row(p.Name, p.Kind, bytesIEC(uint64(p.Size)), sum, stamp(p.Created))
			}
			return t.flush()
		},
	}
	outputFlag(c, &output, fmtTable, fmtWide, fmtJSON, fmtYAML)
	return c
}

func (a *App) packagesPushCmd() *cobra.Command {
	var name, output string
	var replace, quiet bool
	c := &cobra.Command{
		Use:   "push FILE",
		Short: "Upload a package to the server's repository",
		Long: `Upload FILE under its own name (or --name). The file's sha256 is computed first and sent with
it: the server computes its own while it writes and keeps nothing when they differ. A package
of that name with other content is refused unless --replace; pushing the same file again is
not an error. A progress bar is shown on a terminal (not with -q).`,
		Example: `  agentctl packages push ./app_1.2.3_amd64.deb
  agentctl packages push ./build/exec-agent --name exec-agent_2.0.0_linux_amd64 --replace`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			if name == "" {
				name = filepath.Base(file)
			}
			fi, err := os.Stat(file)
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			if !fi.Mode().IsRegular() {
				return usagef(cmd, "%s is not a regular file", file)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := interruptible(cmd)
			defer cancel()
			sum, err := fileSHA256(file)
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			b := a.newBar(quiet, fi.Size(), name)
			p, err := cl.PushPackage(ctx, client.PushSpec{Name: name, Size: fi.Size(), SHA256: sum, Replace: replace}, fileOpener(file), b.set)
			b.done()
			if err != nil {
				return fmt.Errorf("push %s as %s: %w", file, name, err)
			}
			if p.SHA256 != sum || p.Size != fi.Size() {
				return fmt.Errorf("push %s: %w: the server stored %d bytes with sha256 %s, the file has %d with %s (it changed while being sent)",
					file, client.ErrChecksum, p.Size, p.SHA256, fi.Size(), sum)
			}
			if ok, err := printData(a.Out, output, viewOf(p)); ok {
				return err
			}
			fmt.Fprintf(a.Out, "%s: %s, %s, sha256 %s\n", p.Name, p.Kind, bytesIEC(uint64(p.Size)), p.SHA256)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&name, "name", "", "name in the repository (default: the file's name)")
	fl.BoolVar(&replace, "replace", false, "replace a package of the same name")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	outputFlag(c, &output, "text", fmtJSON)
	return c
}

// fileSHA256 is the hex sha256 of a file's content.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (a *App) packagesGetCmd() *cobra.Command {
	var out string
	var quiet bool
	c := &cobra.Command{
		Use:   "get NAME",
		Short: "Download a package (checked against the server's sha256)",
		Long: `Download a package to ./NAME, or to -o FILE (- for stdout). The download goes to a temporary
file renamed once complete, and must have the length and the sha256 the server announces: a
failed download leaves nothing behind.`,
		Example: `  agentctl packages get app_1.2.3_amd64.deb
  agentctl packages get app_1.2.3_amd64.deb -o /tmp/app.deb`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completePackages,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if out == "" {
				if strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
					return usagef(cmd, "%q is not a package name", name)
				}
				out = name
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := interruptible(cmd)
			defer cancel()
			d, err := cl.DownloadPackage(ctx, name)
			if err != nil {
				return fmt.Errorf("get %s: %w", name, err)
			}
			b := a.newBar(quiet || out == "-", d.Size, name)
			defer b.done()
			if out == "-" {
				if _, _, err := d.CopyTo(a.Out, false, nil); err != nil {
					return fmt.Errorf("get %s: %w", name, err)
				}
				return nil
			}
			if fi, err := os.Stat(out); err == nil && fi.IsDir() {
				out = filepath.Join(out, name)
			}
			var n int64
			err = saveTo(out, func(w io.Writer) error {
				var cerr error
				n, _, cerr = d.CopyTo(w, false, b.set)
				return cerr
			})
			d.Close()
			if err != nil {
				return fmt.Errorf("get %s: %w", name, err)
			}
			b.done()
			if a.IsTerminal(a.Err) && !quiet {
				fmt.Fprintf(a.Err, "%s: %s, sha256 %s checked\n", out, bytesIEC(uint64(n)), d.SHA256())
			}
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "file to write (default ./NAME; - for stdout)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return c
}

func (a *App) packagesRmCmd() *cobra.Command {
	c := &cobra.Command{
		Use:               "rm NAME...",
		Aliases:           []string{"delete"},
		Short:             "Remove packages from the repository",
		Example:           `  agentctl packages rm app_1.2.2_amd64.deb app_1.2.1_amd64.deb`,
		Args:              args(1, -1),
		ValidArgsFunction: a.completePackages,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := cl.DeletePackage(cmd.Context(), name); err != nil {
					return fmt.Errorf("rm %s: %w", name, err)
				}
				fmt.Fprintf(a.Out, "removed %s\n", name)
			}
			return nil
		},
	}
	return c
}

// completePackages completes package names.
func (a *App) completePackages(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	list, ok := completionGet(a, cmd, (*client.Client).Packages)
	if !ok {
		return nil, noFiles
	}
	var out []string
	for _, p := range list.Packages {
		if strings.HasPrefix(p.Name, prefix) {
			out = append(out, p.Name+"\t"+p.Kind+", "+bytesIEC(uint64(p.Size)))
		}
	}
	return out, noFiles
}
