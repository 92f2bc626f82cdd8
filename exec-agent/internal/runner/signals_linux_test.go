package runner

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestChildSignalsDefault starts the test binary with SIGHUP and SIGINT
// ignored, as nohup or a background job would, and checks that a command
// started after New has them at their default action — and, so that the
// test can fail, that one started before New inherited the ignore.
func TestChildSignalsDefault(t *testing.T) {
	if os.Getenv("RUNNER_SIGNALS_CHILD") == "1" {
		signal.Ignore(syscall.SIGHUP, syscall.SIGINT)
		before := childIgnored(t)
		New(Options{})
		after := childIgnored(t)
		os.Stdout.WriteString("\nbefore=" + strconv.FormatUint(before, 16) + " after=" + strconv.FormatUint(after, 16) + "\n")
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestChildSignalsDefault$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RUNNER_SIGNALS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var before, after uint64
	for _, l := range strings.Split(string(out), "\n") {
		if b, a, ok := strings.Cut(l, " after="); ok && strings.HasPrefix(b, "before=") {
			before, _ = strconv.ParseUint(strings.TrimPrefix(b, "before="), 16, 64)
			after, _ = strconv.ParseUint(a, 16, 64)
		}
	}
	const hupInt = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGINT-1)
	if before&hupInt != hupInt {
		t.Fatalf("before New a child's ignored set is %x, want SIGHUP and SIGINT in it (output %q)", before, out)
	}
	if after&hupInt != 0 {
		t.Fatalf("after New a child's ignored set is %x, want neither SIGHUP nor SIGINT", after)
	}
}

// childIgnored returns the ignored-signal mask of a child process.
func childIgnored(t *testing.T) uint64 {
	out, err := exec.Command("/bin/sh", "-c", "grep '^SigIgn:' /proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(out), "SigIgn:")), 16, 64)
	if err != nil {
		t.Fatalf("SigIgn %q: %v", out, err)
	}
	return v
}
