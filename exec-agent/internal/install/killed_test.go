package install

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// TestInstallKilled kills an agent process (SIGKILL) in the middle of an
// install — during the download, and while dpkg runs the package's
// postinst — and checks that the next start reports the install as done,
// not ok, saying where it stopped, and removes the download.
func TestInstallKilled(t *testing.T) {
	need(t, "dpkg")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("download", func(t *testing.T) {
		srv := pkgServer(t, []byte(strings.Repeat("a deb that never finishes ", 4000)))
		journal, work := t.TempDir(), t.TempDir()
		url := srv.URL + "/stall"
		killAgent(t, exe, journal, work, url, nil, func() bool {
			b, _ := os.ReadFile(filepath.Join(journal, "killed.journal"))
			return strings.Contains(string(b), `"tmp"`) && partSize(work) > 0
		})
		st := recoverKilled(t, journal, work)
		if kinds(st) != "done!" || st.Actions[0].Msg != "interrupted: the agent stopped while downloading "+url {
			t.Fatalf("after restart: %s %+v", kinds(st), st.Actions)
		}
	})
	t.Run("postinst", func(t *testing.T) {
		dir := t.TempDir()
		started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
		// The package's own script waits for the test's go-ahead: the agent
		// is killed while dpkg runs it.
		script := fmt.Sprintf("#!/bin/sh\ntouch %s\nwhile [ ! -e %s ]; do sleep 0.05; done\n", started, release)
		deb := buildPkg(t, "deb", pkgSpec{name: "agentfleet-killtest", version: "1.0.0", dst: "/opt/killtest/f", body: "f", postinst: script})
		root, args := dpkgRoot(t)
		srv := serve(t, map[string][]byte{"k.deb": deb})
		journal, work := t.TempDir(), t.TempDir()
		killAgent(t, exe, journal, work, srv.URL+"/k.deb", args, func() bool {
			_, err := os.Stat(started)
			return err == nil
		})
		// dpkg outlives the agent (its own process group): let it finish.
		writeFile(t, dir, "release", nil)
		eventually.Within(t, 2*time.Minute, "dpkg to finish", func() bool {
			return dpkgStatus(t, root, "agentfleet-killtest") == "install ok installed"
		})
		st := recoverKilled(t, journal, work)
		want := "interrupted: the agent stopped while installing " + srv.URL + "/k.deb (downloaded, install not finished)"
		if kinds(st) != "download done!" || last(st).Msg != want {
			t.Fatalf("after restart: %s %+v", kinds(st), st.Actions)
		}
	})
}

func partSize(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".install-") {
			if fi, err := e.Info(); err == nil {
				return fi.Size()
			}
		}
	}
	return 0
}

// killAgent starts the helper agent on url, waits until ready holds, and
// kills it with SIGKILL.
func killAgent(t *testing.T, exe, journal, work, url string, dpkgArgs []string, ready func() bool) {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "INSTALL_TEST_HELPER=agent", "INSTALL_JOURNAL="+journal, "INSTALL_WORK="+work,
		"INSTALL_URL="+url, "INSTALL_DPKG_ARGS="+strings.Join(dpkgArgs, "\n"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for !ready() {
		select {
		case err := <-exited:
			t.Fatalf("the helper agent ended before it was killed: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("the helper agent did not get there in time\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper agent: %v\n%s", err, out.String())
	}
}

// recoverKilled is the restarted agent: it recovers the journal and
// returns the killed install's report.
func recoverKilled(t *testing.T, journal, work string) Status {
	t.Helper()
	s, err := OpenStore(StoreOptions{Dir: journal})
	if err != nil {
		t.Fatal(err)
	}
	reps, err := s.Recover()
	if err != nil || len(reps) != 1 || reps[0].ID != "killed" || !reps[0].Done {
		t.Fatalf("Recover = %+v, %v", reps, err)
	}
	if n := partSize(work); n != 0 {
		t.Fatalf("the interrupted download is still there (%d bytes)", n)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Fatalf("work dir after recovery: %v", ents)
	}
	return reps[0].Status
}
