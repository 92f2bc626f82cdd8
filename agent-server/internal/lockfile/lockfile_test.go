package lockfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// helperEnv makes the test binary a lock holder (see TestMain).
const helperEnv = "LOCKFILE_TEST_HOLD"

// TestMain: with helperEnv set, the binary takes the lock on that path,
// says "locked" and holds it until its stdin closes.
func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		l, err := Acquire(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSameProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(path)
	want := path + " is held by pid " + strconv.Itoa(os.Getpid())
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Acquire: %v, want ErrLocked naming %q", err, want)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	l2, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}
}

// holderProcess starts a process holding the lock on path.
func holderProcess(t *testing.T, path string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder said %q (%v)", line, err)
	}
	return cmd, stdin
}

// TestOtherProcess: a lock held by another process refuses Acquire with
// that process's pid, and is free again once it ends — cleanly or killed.
func TestOtherProcess(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill=%v", kill), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.lock")
			cmd, stdin := holderProcess(t, path)
			_, err := Acquire(path)
			want := "is held by pid " + strconv.Itoa(cmd.Process.Pid)
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Acquire while held: %v, want ErrLocked %q", err, want)
			}
			if kill {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			} else {
				stdin.Close()
			}
			_ = cmd.Wait()
			l, err := Acquire(path)
			if err != nil {
				t.Fatalf("Acquire after the holder ended: %v", err)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAcquireError(t *testing.T) {
	_, err := Acquire(filepath.Join(t.TempDir(), "missing", "x.lock"))
	if err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("Acquire in a missing dir: %v", err)
	}
}
