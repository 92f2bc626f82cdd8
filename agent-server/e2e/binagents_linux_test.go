package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// buildAgent builds the agent of module (a folder at the repository root,
// e.g. "exec-agent") into dir and returns the binary's path.
func buildAgent(t *testing.T, dir, module string) string {
	t.Helper()
	bin := filepath.Join(dir, module)
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", module)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", module, err, out)
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
	out, err := os.Create(filepath.Join(a.dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--conf", path, "run")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
		if t.Failed() {
			for _, f := range []string{out.Name(), filepath.Join(a.logDir, filepath.Base(bin)+".log")} {
				if b, err := os.ReadFile(f); err == nil {
					t.Logf("%s %s:\n%s", id, filepath.Base(f), b)
				}
			}
		}
	})
	ts.waitOnline(id)
	return a
}
