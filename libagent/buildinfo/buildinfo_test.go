package buildinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	got := String("exec-agent")
	want := "exec-agent 0.0.0-dev (commit unknown, built unknown, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got != want {
		t.Errorf("String = %q\nwant     %q", got, want)
	}
	if !strings.HasPrefix(GoVersion(), "go") {
		t.Errorf("GoVersion = %q", GoVersion())
	}
}

// TestLdflags builds a tiny program with -X flags, as the Makefile does, and
// checks that the stamp reaches String.
func TestLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/agentfleet/libagent/buildinfo\"\n)\n\nfunc main() { fmt.Print(buildinfo.String(\"x\")) }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "x")
	const pkg = "github.com/agentfleet/libagent/buildinfo"
	cmd := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X "+pkg+".Version=1.2.3 -X "+pkg+".Commit=abc1234 -X "+pkg+".Date=2026-11-24T13:00:00Z", src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "x 1.2.3 (commit abc1234, built 2026-11-24T13:00:00Z, go") {
		t.Errorf("output %q", out)
	}
}
