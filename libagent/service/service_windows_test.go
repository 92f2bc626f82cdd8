package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/agentfleet/jkframe/eventually"
)

func TestKardianosConfigWindows(t *testing.T) {
	exe := `C:\Program Files\exec-agent\exec-agent.exe`
	kc, err := kardianosConfig(Config{Name: "exec-agent", Executable: exe, Args: []string{"run", "--conf", `C:\Program Files\exec-agent\conf\agent.conf`}})
	if err != nil {
		t.Fatal(err)
	}
	if kc.Executable != exe || kc.WorkingDirectory != `C:\Program Files\exec-agent` {
		t.Fatalf("mapped %+v", kc)
	}
	for _, rel := range []string{`bin\agent.exe`, `\agent.exe`, `C:agent.exe`, "/opt/agent/agent"} {
		if _, err := kardianosConfig(Config{Name: "a", Executable: rel}); err == nil {
			t.Errorf("executable %q accepted, want: not an absolute path", rel)
		}
	}
}

// In a console (not under the SCM) Run takes the foreground path.
func TestRunInteractive(t *testing.T) {
	boom := errors.New("boom")
	if err := Run(Config{Name: "a"}, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

// TestSCMChild is the service TestSCM installs: this test binary started by
// the SCM with "-test.run=^TestSCMChild$ scm-child <name> <mode> <dir>". It
// runs Run with a start that writes <dir>\started, then either waits for the
// stop request and writes <dir>\stopped (mode "wait") or returns an error at
// once (mode "exit"). Run's error goes to <dir>\returned, and the process
// ends as an agent's does. Run directly, it is skipped.
func TestSCMChild(t *testing.T) {
	if flag.NArg() != 4 || flag.Arg(0) != "scm-child" {
		t.Skip("run by TestSCM as a Windows service")
	}
	name, mode, dir := flag.Arg(1), flag.Arg(2), flag.Arg(3)
	err := Run(Config{Name: name, StopTimeout: 10 * time.Second}, func(ctx context.Context) error {
		if err := os.WriteFile(filepath.Join(dir, "started"), nil, 0o644); err != nil {
			return err
		}
		if mode == "exit" {
			return errors.New("gave up")
		}
		<-ctx.Done()
		return os.WriteFile(filepath.Join(dir, "stopped"), nil, 0o644)
	})
	msg := "<nil>"
	if err != nil {
		msg = err.Error()
	}
	os.WriteFile(filepath.Join(dir, "returned"), []byte(msg), 0o644)
	os.Exit(0)
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// The service lifecycle through the Windows service manager: install (with
// the recovery actions), start, status, stop (start's context canceled),
// uninstall; and a service whose start returns by itself ends its process.
func TestSCM(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"wait", "exit"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			var id [4]byte
			_, _ = rand.Read(id[:])
			name := "agentfleet-test-" + hex.EncodeToString(id[:])
			c := Config{
				Name:        name,
				Description: "agentfleet service test",
				Executable:  exe,
				Args:        []string{"-test.run=^TestSCMChild$", "scm-child", name, mode, dir},
			}
			if err := Control(c, "install"); err != nil {
				if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
					t.Skipf("installing a service needs an administrator: %v", err)
				}
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if mode == "wait" { // (wine leaves the ended "exit" service running; a stop would wait for ever)
					_ = Control(c, "stop")
				}
				if err := Control(c, "uninstall"); err != nil {
					t.Errorf("uninstall: %v", err)
				}
				// Deleted once the last handle to it is closed, which the
				// service's own process may still hold for a moment.
				eventually.True(t, "service deleted", func() bool { st, err := Status(c); return err == nil && st == StateNotInstalled })
			})
			if st, err := Status(c); err != nil || st != StateStopped {
				t.Fatalf("installed: %v %v, want stopped", st, err)
			}

			// A service whose start returns at once may end before the
			// SCM has seen it running: StartService then reports a timeout.
			if err := Control(c, "start"); err != nil && mode == "wait" {
				t.Fatal(err)
			}
			eventually.True(t, "service wrote started", func() bool { return exists(filepath.Join(dir, "started")) })
			if mode == "exit" {
				// start returned by itself: Run returned start's error
				// without telling the SCM, and the process ended, which a
				// real SCM counts as a failure (recovery: restart). Wine's
				// SCM does not notice the end (the service stays
				// "running"), so the process itself is checked.
				eventually.True(t, "Run returned", func() bool { return exists(filepath.Join(dir, "returned")) })
				if b, _ := os.ReadFile(filepath.Join(dir, "returned")); string(b) != "service "+name+": gave up" {
					t.Fatalf("Run returned %q", b)
				}
				assertExited(t, query(t, name).ProcessId)
				return
			}
			if st, err := Status(c); err != nil || st != StateRunning {
				t.Fatalf("started: %v %v, want running", st, err)
			}
			if err := Control(c, "status"); err != nil {
				t.Fatalf("Control status of a running service: %v", err)
			}
			if err := Control(c, "stop"); err != nil {
				t.Fatal(err)
			}
			eventually.True(t, "service stopped", func() bool { st, _ := Status(c); return st == StateStopped })
			if !exists(filepath.Join(dir, "stopped")) {
				b, _ := os.ReadFile(filepath.Join(dir, "error"))
				t.Fatalf("start's context was not canceled by the stop (error file: %q)", b)
			}
			if err := Control(c, "status"); !errors.Is(err, ErrStopped) {
				t.Fatalf("Control status of a stopped service: %v", err)
			}
		})
	}
}

func openService(t *testing.T, name string) (*mgr.Mgr, *mgr.Service) {
	t.Helper()
	m, err := mgr.Connect()
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.OpenService(name)
	if err != nil {
		m.Disconnect()
		t.Fatal(err)
	}
	return m, s
}

func query(t *testing.T, name string) svc.Status {
	t.Helper()
	m, s := openService(t, name)
	defer m.Disconnect()
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// assertExited waits until process pid has ended; a pid that cannot be
// opened any more has ended too.
func assertExited(t *testing.T, pid uint32) {
	t.Helper()
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, pid)
	if err != nil {
		return
	}
	defer windows.CloseHandle(h)
	if ev, err := windows.WaitForSingleObject(h, 60_000); err != nil || ev != windows.WAIT_OBJECT_0 {
		t.Fatalf("service process %d still runs after Run returned (wait: %d %v)", pid, ev, err)
	}
}
