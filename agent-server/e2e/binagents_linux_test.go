package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/agentfleet/agent-server/servertest"
)

// buildAgent builds (or finds, see servertest.Build) the agent of module
// (a folder at the repository root, e.g. "exec-agent") into dir and
// returns the binary's path.
func buildAgent(t *testing.T, dir, module string) string {
	t.Helper()
	bin, err := servertest.Build(dir, module)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// binAgent is an agent binary running as its own process.
type binAgent struct {
	id     string
	dir    string // its config, state and log files
	logDir string // basic.log.dir
}

// startBinAgent runs bin (built by buildAgent) with id against ts until the
// end of the test, logging to files in its own directory (so that its log
// files can be listed), and waits until it is online. extra are more
// agent.conf lines.
func startBinAgent(t *testing.T, ts *testServer, bin, id, extra string) *binAgent {
	t.Helper()
	a := &binAgent{id: id, dir: filepath.Join(t.TempDir(), id)}
	a.logDir = filepath.Join(a.dir, "logs")
	if err := os.MkdirAll(filepath.Join(a.dir, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("basic.id = %s\nbasic.server = %s\nbasic.token = %s\nbasic.log.target = file\nbasic.log.dir = %s\nbasic.monitor.enabled = false\n%s",
		id, ts.addr, agentToken, a.logDir, extra)
	path := filepath.Join(a.dir, "conf", "agent.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := servertest.StartProc(servertest.ProcOptions{Name: id, Args: []string{bin, "--conf", path, "run"},
		Log: filepath.Join(a.dir, "stdout.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(syscall.SIGTERM)
		if t.Failed() {
			for _, f := range []string{p.Log, filepath.Join(a.logDir, filepath.Base(bin)+".log")} {
				if b, err := os.ReadFile(f); err == nil {
					t.Logf("%s %s:\n%s", id, filepath.Base(f), b)
				}
			}
		}
	})
	ts.waitOnline(id)
	return a
}
