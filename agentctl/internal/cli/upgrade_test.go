package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// TestUpgradeRequest: the flags of upgrade become the request's fields;
// --signature files and folders become signature (with --package) or
// signatures by binary name (with --version), and the wrong ones are
// usage errors naming the file.
func TestUpgradeRequest(t *testing.T) {
	dir := t.TempDir()
	sig := func(c byte) string { return strings.Repeat(string(c), 86) + "==" }
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	amd := write("dist/exec-agent_2.0.0_linux_amd64.sig", sig('a')+"\n")
	write("dist/exec-agent_2.0.0_linux_arm64.sig", sig('b'))
	write("dist/exec-agent_2.0.0_linux_amd64", "not a signature: the binary")
	write("dist/metrics-agent_2.0.0_linux_amd64.sig", sig('m'))
	hotfix := write("hotfix.sig", sig('h'))
	write("empty/x.sig", "")
	two := write("two-lines.sig", sig('a')+"\n"+sig('b')+"\n")
	empty := filepath.Join(dir, "empty/x.sig")
	dist := filepath.Join(dir, "dist")

	for _, tc := range []struct {
		name string
		f    upgradeFlags
		ids  []string
		want client.UpgradeRequest
		err  string
	}{
		{name: "version, folder", f: upgradeFlags{agentType: "exec-agent", version: "v2.0.0", sigs: []string{dist}, deadline: 90e9, stay: 5e9},
			ids: []string{"a1", "a2"},
			want: client.UpgradeRequest{Selector: client.Selector{IDs: []string{"a1", "a2"}}, AgentType: "exec-agent", Version: "v2.0.0",
				Signatures: map[string]string{"exec-agent_2.0.0_linux_amd64": sig('a'), "exec-agent_2.0.0_linux_arm64": sig('b')}, Deadline: 90, Stay: 5}},
		{name: "version, one file, rollout", f: upgradeFlags{runFlags: runFlags{selector: "env=prod", os: "linux", concurrency: "25%", maxErrors: "1", canary: 2, batchWait: 3e9},
			agentType: "exec-agent", version: "2.0.0", sigs: []string{amd}},
			want: client.UpgradeRequest{Selector: client.Selector{Labels: "env=prod", OS: "linux"}, AgentType: "exec-agent", Version: "2.0.0",
				Signatures: map[string]string{"exec-agent_2.0.0_linux_amd64": sig('a')}, Concurrency: "25%", MaxErrors: "1", Canary: 2, BatchWait: "3s"}},
		{name: "package, a file of another name", f: upgradeFlags{agentType: "exec-agent", pkg: "exec-agent-hotfix", sigs: []string{hotfix}}, ids: []string{"a1"},
			want: client.UpgradeRequest{Selector: client.Selector{IDs: []string{"a1"}}, AgentType: "exec-agent", Package: "exec-agent-hotfix", Signature: sig('h')}},
		{name: "package, the folder holds its .sig", f: upgradeFlags{agentType: "exec-agent", pkg: "exec-agent_2.0.0_linux_arm64", sigs: []string{dist}}, ids: []string{"a1"},
			want: client.UpgradeRequest{Selector: client.Selector{IDs: []string{"a1"}}, AgentType: "exec-agent", Package: "exec-agent_2.0.0_linux_arm64", Signature: sig('b')}},
		{name: "package, several files", f: upgradeFlags{agentType: "exec-agent", pkg: "exec-agent_2.0.0_linux_amd64", sigs: []string{hotfix, amd}}, ids: []string{"a1"},
			want: client.UpgradeRequest{Selector: client.Selector{IDs: []string{"a1"}}, AgentType: "exec-agent", Package: "exec-agent_2.0.0_linux_amd64", Signature: sig('a')}},
		{name: "unsigned", f: upgradeFlags{agentType: "exec-agent", pkg: "p"}, ids: []string{"a1"},
			want: client.UpgradeRequest{Selector: client.Selector{IDs: []string{"a1"}}, AgentType: "exec-agent", Package: "p"}},

		{name: "package, several files, none its", f: upgradeFlags{agentType: "exec-agent", pkg: "p", sigs: []string{hotfix, amd}}, ids: []string{"a1"},
			err: "--signature: 2 signatures, none of them p.sig"},
		{name: "package not in the folder", f: upgradeFlags{agentType: "exec-agent", pkg: "p", sigs: []string{dist}}, ids: []string{"a1"},
			err: "--signature " + dist + ": no p.sig there"},
		{name: "version not in the folder", f: upgradeFlags{agentType: "exec-agent", version: "3.0", sigs: []string{dist}}, ids: []string{"a1"},
			err: "no exec-agent_3.0_*.sig there"},
		{name: "another release's file", f: upgradeFlags{agentType: "exec-agent", version: "3.0", sigs: []string{amd}}, ids: []string{"a1"},
			err: "signs exec-agent_2.0.0_linux_amd64, not a release binary exec-agent_3.0_*"},
		{name: "the binary, not its .sig", f: upgradeFlags{agentType: "exec-agent", version: "2.0.0", sigs: []string{strings.TrimSuffix(amd, ".sig")}}, ids: []string{"a1"},
			err: "want a .sig file named after the binary it signs"},
		{name: "empty file", f: upgradeFlags{agentType: "exec-agent", pkg: "x", sigs: []string{empty}}, ids: []string{"a1"},
			err: "x.sig: not the one-line text of a signature"},
		{name: "two lines", f: upgradeFlags{agentType: "exec-agent", pkg: "x", sigs: []string{two}}, ids: []string{"a1"},
			err: "two-lines.sig: not the one-line text of a signature"},
		{name: "negative stay", f: upgradeFlags{agentType: "exec-agent", pkg: "x", stay: -1e9}, ids: []string{"a1"},
			err: "negative --deadline or --stay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.output = "text"
			got, err := tc.f.request(&cobra.Command{Use: "upgrade"}, tc.ids)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if _, code := describe(err); code != ExitUsage {
					t.Errorf("exit %d, want %d", code, ExitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("request\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
