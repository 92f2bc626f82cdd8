package servertest

import (
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The server answers the operator token, survives a kill and a restart
// with its port and data, and a server that cannot start is an error that
// shows its log.
func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds agent-server")
	}
	bin, err := Build(t.TempDir(), "agent-server")
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, Options{Binary: bin, Conf: map[string]string{"id": "servertest"}})
	agents := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+"/api/agents", nil)
		req.Header.Set("Authorization", "Bearer "+OperatorToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := agents(); code != 200 {
		t.Fatalf("GET /api/agents with the operator token: %d", code)
	}
	conf, _ := os.ReadFile(s.ConfPath)
	if !strings.Contains(string(conf), "id = servertest\n") || strings.Count(string(conf), "id = ") != 1 {
		t.Errorf("Conf did not replace the default id:\n%s", conf)
	}
	pid := s.PID()
	s.Kill()
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.PID() == pid || !s.Running() || agents() != 200 {
		t.Fatalf("after Restart: pid %d (was %d), running %v", s.PID(), pid, s.Running())
	}
	if err := s.Restart(); err == nil {
		t.Error("Restart of a running server did not fail")
	}
	if err := s.Stop(); err != nil || s.Running() {
		t.Fatalf("Stop = %v, running %v", err, s.Running())
	}

	_, err = Launch(Options{Binary: bin, Dir: t.TempDir(), Conf: map[string]string{"log_level": "loud"}})
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "loud") {
		t.Fatalf("Launch with a bad config = %v; want the exit and the log naming the bad value", err)
	}
}

func TestProcKB(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, err := ProcKB(0, "VmRSS"); err == nil {
			t.Fatal("ProcKB without /proc: no error")
		}
		return
	}
	rss := MustProcKB(t, 0, "VmRSS")
	hwm := MustProcKB(t, os.Getpid(), "VmHWM")
	if rss <= 0 || hwm < rss {
		t.Fatalf("VmRSS %d kB, VmHWM %d kB", rss, hwm)
	}
	if _, err := ProcKB(0, "NoSuchField"); err == nil || !strings.Contains(err.Error(), "no NoSuchField") {
		t.Fatalf("missing field: %v", err)
	}
	if _, err := ProcKB(0, "Name"); err == nil {
		t.Fatal("a field that is not a number: no error")
	}
	// Spinning (reading our own stat) must add to our CPU time.
	cpu := MustProcCPU(t, 0)
	deadline := time.Now().Add(time.Minute)
	for MustProcCPU(t, os.Getpid()) <= cpu {
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stuck at %v after a minute of spinning", cpu)
		}
	}
}
