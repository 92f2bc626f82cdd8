package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// upgradeFlags are the flags of upgrade.
type upgradeFlags struct {
	runFlags
	agentType, pkg, version string
	sigs                    []string // --signature: .sig files or folders of them
	deadline, stay          time.Duration
	detach                  bool
}

// maxSigFile bounds a .sig file (a signature is 90 bytes of base64).
const maxSigFile = 4 << 10

func (a *App) upgradeCmd() *cobra.Command {
	var f upgradeFlags
	c := &cobra.Command{
		Use:   "upgrade [ID... | -l SELECTOR] --type TYPE (--version V | --package NAME) [--signature FILE|DIR]",
		Short: "Upgrade agents to a new binary of theirs (self-update, signed, with rollback)",
		Long: `Upgrade agents of one type to a new binary (docs/upgrade.md): the binary is in the server's
package repository, either --package NAME or, with --version V, the release binary
<type>_<V>_<os>_<arch> (.exe on Windows) for each agent's os and arch, as make release names
it (upload it with agentctl packages push). Each agent checks the sha256 and the signature
before it swaps anything, restarts on the new binary, and must connect and stay up --stay
within --deadline; otherwise its watchdog puts the old binary back and the agent fails.

--signature gives the .sig files make release wrote next to the binaries (named after the
binary they sign), or a folder holding them; without it the server offers the repository's
<name>.sig if there is one, and an agent refuses an unsigned binary unless its config allows
it (basic.upgrade.allow_unsigned).

A line per agent as it starts and ends ("web-01 | ok: upgraded from 1.0.0 to 2.0.0 (…)"),
then a table of results on stderr. Exit 0 only if every agent runs the new binary. Ctrl-C
cancels the task: no new upgrade starts; an agent that already swapped is decided by its own
watchdog. --detach prints the task id and leaves (agentctl tasks watch ID follows it).`,
		Example: `  agentctl upgrade -l env=staging --type exec-agent --version 2.0.0 --signature dist/ --canary 1 --concurrency 25%
  agentctl upgrade web-01 web-02 --type exec-agent --package exec-agent-2.0.0-hotfix --signature hotfix.sig
  agentctl upgrade -l role=db --type metrics-agent --version 2.0.0 --deadline 5m --stay 30s --detach`,
		Args: args(0, -1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			typ, _ := cmd.Flags().GetString("type")
			return a.agentIDs(cmd, toComplete, typ), noFiles
		},
		RunE: func(cmd *cobra.Command, ids []string) error {
			req, err := f.request(cmd, ids)
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			created, err := cl.UpgradeAgents(cmd.Context(), req)
			if err != nil {
				return err
			}
			lost := ""
			if created.Lost > 0 {
				lost = fmt.Sprintf(", %d offline at the start", created.Lost)
			}
			if f.detach {
				fmt.Fprintln(a.Out, created.ID)
				fmt.Fprintf(a.Err, "upgrade %s: %d agent(s)%s; follow it with agentctl tasks watch %s\n", created.ID, created.Agents, lost, created.ID)
				return nil
			}
			mode := showStates
			if f.output != "text" {
				mode = showNothing
			} else {
				fmt.Fprintf(a.Err, "upgrade %s: %d agent(s)%s\n", created.ID, created.Agents, lost)
			}
			return a.followTask(cmd.Context(), cl, created.ID, mode, false, f.output, true)
		},
	}
	f.addFleet(c, a)
	outputFlag(c, &f.output, "text", fmtJSON, fmtYAML)
	fl := c.Flags()
	fl.Lookup("selector").Usage = "upgrade the agents of --type matching this label selector (k=v,k!=v,k,!k)"
	fl.Lookup("canary").Usage = "upgrade N agents first; the rest only if all N succeed"
	fl.StringVar(&f.agentType, "type", "", "the agents' type (exec-agent, metrics-agent, …): only agents of this type are upgraded (required)")
	fl.StringVar(&f.version, "version", "", "upgrade to this release: the repository's <type>_<version>_<os>_<arch> for each agent")
	fl.StringVar(&f.pkg, "package", "", "upgrade to this binary of the server's repository, by name (every agent gets the same)")
	fl.StringArrayVar(&f.sigs, "signature", nil, "a .sig file of make release, or a folder of them (repeatable)")
	fl.DurationVar(&f.deadline, "deadline", 0, "the new binary must connect and stay up --stay within this, or it is rolled back (default: the server's, 2m)")
	fl.DurationVar(&f.stay, "stay", 0, "how long the new binary must stay connected (default: the server's, 10s or half the deadline)")
	fl.BoolVar(&f.detach, "detach", false, "print the task id and leave instead of following the upgrade")
	_ = c.RegisterFlagCompletionFunc("type", a.completeAgentTypes)
	_ = c.RegisterFlagCompletionFunc("package", a.completePackages)
	_ = c.MarkFlagFilename("signature", "sig")
	return c
}

// request checks the flags and builds the request.
func (f *upgradeFlags) request(cmd *cobra.Command, ids []string) (client.UpgradeRequest, error) {
	if err := f.checkFleet(cmd, ids); err != nil {
		return client.UpgradeRequest{}, err
	}
	switch {
	case f.agentType == "":
		return client.UpgradeRequest{}, usagef(cmd, "--type: which type of agent to upgrade (exec-agent, metrics-agent, …)")
	case f.pkg == "" && f.version == "":
		return client.UpgradeRequest{}, usagef(cmd, "give --version V (the release binaries <type>_<V>_<os>_<arch> of the server's repository) or --package NAME")
	case f.pkg != "" && f.version != "":
		return client.UpgradeRequest{}, usagef(cmd, "give --version or --package, not both")
	case f.deadline < 0 || f.stay < 0:
		return client.UpgradeRequest{}, usagef(cmd, "negative --deadline or --stay")
	case f.deadline%time.Second != 0 || f.stay%time.Second != 0:
		return client.UpgradeRequest{}, usagef(cmd, "--deadline and --stay: whole seconds")
	case f.detach && f.output != "text":
		return client.UpgradeRequest{}, usagef(cmd, "--detach prints the task id only: no -o")
	}
	req := client.UpgradeRequest{Selector: f.selectorOf(ids), AgentType: f.agentType, Package: f.pkg, Version: f.version,
		Deadline: int(f.deadline / time.Second), Stay: int(f.stay / time.Second),
		Concurrency: f.concurrency, MaxErrors: f.maxErrors, Canary: f.canary,
		BatchWait: durationText(f.batchWait), WaitOffline: durationText(f.waitOffline)}
	sigs, err := f.signatures(cmd)
	if err != nil {
		return req, err
	}
	switch {
	case len(sigs) == 0:
	case f.pkg == "":
		req.Signatures = sigs
	case len(sigs) == 1:
		for _, s := range sigs { // the package's, whatever its file is called
			req.Signature = s
		}
	default:
		s, ok := sigs[f.pkg]
		if !ok {
			return req, usagef(cmd, "--signature: %d signatures, none of them %s.sig", len(sigs), f.pkg)
		}
		req.Signature = s
	}
	return req, nil
}

// signatures reads the --signature files: name of the binary signed (the
// file's name without .sig) → the signature. In a folder, the files of the
// binaries the request may offer: <package>.sig, or with --version every
// <type>_<version>_*.sig.
func (f *upgradeFlags) signatures(cmd *cobra.Command) (map[string]string, error) {
	version := strings.TrimPrefix(f.version, "v")
	release := f.agentType + "_" + version + "_"
	out := map[string]string{}
	for _, p := range f.sigs {
		st, err := os.Stat(p)
		if err != nil {
			return nil, usagef(cmd, "--signature: %v", err)
		}
		var files []string
		if st.IsDir() {
			want := f.pkg + ".sig"
			if f.pkg == "" {
				want = release + "*.sig"
			}
			// Names of agent types, versions and packages hold no glob
			// characters (the server refuses them), so want is a pattern as it is.
			files, _ = filepath.Glob(filepath.Join(p, want))
			if len(files) == 0 {
				return nil, usagef(cmd, "--signature %s: no %s there", p, want)
			}
		} else {
			if !strings.HasSuffix(p, ".sig") {
				return nil, usagef(cmd, "--signature %s: want a .sig file named after the binary it signs (as make release writes them) or a folder of them", p)
			}
			files = []string{p}
		}
		for _, file := range files {
			name := strings.TrimSuffix(filepath.Base(file), ".sig")
			if f.pkg == "" && !strings.HasPrefix(name, release) {
				return nil, usagef(cmd, "--signature %s: signs %s, not a release binary %s*", file, name, release)
			}
			sig, err := readSig(file)
			if err != nil {
				return nil, usagef(cmd, "--signature %s: %v", file, err)
			}
			out[name] = sig
		}
	}
	return out, nil
}

// readSig reads the text of a .sig file.
func readSig(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxSigFile+1))
	switch {
	case err != nil:
		return "", err
	case len(b) > maxSigFile:
		return "", fmt.Errorf("over %d bytes: not a signature", maxSigFile)
	}
	sig := strings.TrimSpace(string(b))
	if sig == "" || strings.ContainsAny(sig, " \t\r\n") {
		return "", errors.New("not the one-line text of a signature")
	}
	return sig, nil
}
