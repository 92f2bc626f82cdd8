//go:build linux

package e2e

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/fullfs"
)

// Disk full, with the kernel's own ENOSPC: a small tmpfs (fullfs, as root)
// filled up under the real server and agent binaries.

// TestAgentJournalDiskFull: the agent's journal is on a full file system
// when a command prints. Nothing is dropped: the output waits on the agent
// (the command blocks on its full pipe), the agent logs why, the task is
// not done; once space comes back the whole output and the result arrive.
func TestAgentJournalDiskFull(t *testing.T) {
	var jdir string
	e := newEnv(t, envOptions{direct: true, beforeAgent: func(adir string) {
		jdir = filepath.Join(adir, "conf", "agent.journal")
		fullfs.Mount(t, jdir, 1<<20)
	}})
	dir := t.TempDir()
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	const n = 30000 // 168,894 bytes: far more than the page a full tmpfs may still give
	rr, r := e.run(runReq{Cmd: fmt.Sprintf("touch %s; while [ ! -e %s ]; do sleep 0.02; done; seq 1 %d", started, release, n),
		Pipe: true, Timeout: 300}, true)
	if r.status != 200 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	eventually.Within(t, 30*time.Second, "the command to start", func() bool { _, err := os.Stat(started); return err == nil })
	free := fullfs.Fill(t, jdir)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 60*time.Second, "the agent to log that its journal's disk is full", func() bool {
		return logCount(t, e.agent.Log, "the disk is full; the reply waits until space comes back") > 0
	})
	if s := e.status(rr.PID); s.Done {
		t.Fatalf("task done while its output could not be journaled: %+v", s)
	}
	free()
	s := e.waitDone(rr.PID, 60*time.Second)
	if s.Code != 0 || s.State != "ok" {
		t.Errorf("status after space came back: %+v, want code 0, state ok", s)
	}
	if out, want := e.output(rr.PID), seqOutput(n, "\n"); !bytes.Equal(out, want) {
		t.Errorf("output after space came back: %d bytes, want %d (what seq printed)", len(out), len(want))
	}
	if logCount(t, e.agent.Log, "journal: space came back") == 0 {
		t.Error("the agent did not log that space came back")
	}
}

// TestUploadAgentDiskFull: an upload into a directory on a full file
// system answers 507 with the agent's "no space left on device", leaves
// neither the file nor its temporary part behind, and the space it took is
// free again for the next upload.
func TestUploadAgentDiskFull(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "dest")
	fullfs.Mount(t, dest, 512<<10)
	e := newEnv(t, envOptions{direct: true})
	src := filepath.Join(t.TempDir(), "src")
	big := make([]byte, 2<<20) // four times the file system
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(big)
	r := e.upload(src, dest, "big.bin", hex.EncodeToString(sum[:]))
	if r.status != http.StatusInsufficientStorage || !strings.Contains(r.Msg, "no space left on device") {
		t.Fatalf("upload to a full file system: %d %s, want 507 naming \"no space left on device\"", r.status, r.body)
	}
	if names := dirNames(t, dest); len(names) != 0 {
		t.Fatalf("left in %s after the failed upload: %v", dest, names)
	}
	small := big[:100<<10]
	if err := os.WriteFile(src, small, 0o644); err != nil {
		t.Fatal(err)
	}
	sum = md5.Sum(small)
	if r := e.upload(src, dest, "small.bin", hex.EncodeToString(sum[:])); r.status != 200 {
		t.Fatalf("upload after the failed one: %d %s", r.status, r.body)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "small.bin")); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("small.bin: %d bytes, %v", len(got), err)
	}
}

// TestServerDataDiskFull: the server's data_dir (its SQLite database) is
// on a full file system when an agent replays a result. The server does not
// acknowledge what it cannot store: it closes the connection each time and
// the agent replays again; once space comes back the result and the whole
// output are stored, and a SIGKILL of the server right after loses none of
// it.
//
// It failed 2 runs in 4 on a loaded machine before the replayed output was
// stored before its ack (and deduplicated by offset) and status by pid
// looked in the store after a restart.
func TestServerDataDiskFull(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	fullfs.Mount(t, data, 16<<20)
	e := newEnv(t, envOptions{serverConf: map[string]string{"data_dir": data}})
	dir := t.TempDir()
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	const n = 300000 // 2 MB of output: more than SQLite's log holds already
	rr, r := e.run(runReq{Cmd: fmt.Sprintf("touch %s; while [ ! -e %s ]; do sleep 0.02; done; seq 1 %d", started, release, n),
		Pipe: true, Timeout: 300}, true)
	if r.status != 200 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	eventually.Within(t, 30*time.Second, "the command to start", func() bool { _, err := os.Stat(started); return err == nil })
	// The agent goes away while the command runs: its output and result
	// stay in its journal.
	e.proxy.Pause(true)
	e.proxy.Cut()
	eventually.Within(t, 30*time.Second, "the agent to be listed offline", func() bool { return !e.online() })
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 30*time.Second, "the command to end while the agent is away", func() bool { return syscall.Kill(rr.PID, 0) != nil })
	free := fullfs.Fill(t, data)
	const notStored = "journaled message not stored; closing so the agent replays it"
	before := logCount(t, e.server.LogPath, notStored)
	e.proxy.Pause(false)
	eventually.Within(t, 90*time.Second, "the server to refuse the replayed result twice", func() bool {
		return logCount(t, e.server.LogPath, notStored) >= before+2
	})
	if line := logLine(t, e.server.LogPath, notStored); !strings.Contains(line, "no space left on device") && !strings.Contains(line, "database or disk is full") {
		t.Errorf("the server's log does not name the full disk: %s", line)
	} else {
		t.Logf("server: %s", line)
	}
	free()
	s := e.waitDone(rr.PID, 120*time.Second)
	if s.Code != 0 || s.State != "ok" {
		t.Errorf("status after space came back: %+v, want code 0, state ok", s)
	}
	want := seqOutput(n, "\n")
	if out := e.output(rr.PID); !bytes.Equal(out, want) {
		t.Errorf("output after space came back: %d bytes, want %d", len(out), len(want))
	}
	// Acknowledged means stored: a SIGKILL of the server loses nothing.
	e.server.Kill()
	e.client.CloseIdleConnections()
	e.restartServer()
	if s := e.waitDone(rr.PID, 60*time.Second); s.Code != 0 || s.State != "ok" {
		t.Errorf("status after the server's restart: %+v, want code 0, state ok", s)
	}
	if out := e.output(rr.PID); !bytes.Equal(out, want) {
		t.Errorf("output after the server's restart: %d bytes, want %d", len(out), len(want))
	}
}

// logCount counts the lines of the log at path that contain s.
func logCount(t testing.TB, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(s))
}

// logLine returns the first line of the log at path that contains s.
func logLine(t testing.TB, path, s string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, s) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// dirNames lists the entries of dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range es {
		names = append(names, de.Name())
	}
	return names
}

// status returns the task's status now (404: not done).
func (e *env) status(pid int) status {
	e.t.Helper()
	var s status
	r := e.api("GET", fmt.Sprintf("/api/exec/%s/status/%d", e.agentID, pid), nil)
	switch r.status {
	case 200:
		if err := json.Unmarshal(r.Payload, &s); err != nil {
			e.t.Fatalf("status %d: %s", pid, r.body)
		}
	case 404:
	default:
		e.t.Fatalf("status %d: %d %s", pid, r.status, r.body)
	}
	return s
}

// output reads the whole output of a done task through /pty/{pid}?offset=.
func (e *env) output(pid int) []byte {
	e.t.Helper()
	var out []byte
	for {
		r := e.api("GET", fmt.Sprintf("/api/exec/%s/pty/%d?offset=%d", e.agentID, pid, len(out)), nil)
		if r.status != 200 {
			e.t.Fatalf("pty %d: %d %s", pid, r.status, r.body)
		}
		if len(r.body) == 0 {
			if r.header.Get("X-Done") != "true" {
				e.t.Fatalf("pty %d: X-Done %q at the end of a done task's output", pid, r.header.Get("X-Done"))
			}
			return out
		}
		out = append(out, r.body...)
	}
}

// online reports whether the server lists the agent online.
func (e *env) online() bool {
	e.t.Helper()
	r := e.api("GET", "/api/agents/"+e.agentID, nil)
	var a struct {
		IsOnline bool `json:"is_online"`
	}
	_ = json.Unmarshal(r.Payload, &a)
	return r.status == 200 && a.IsOnline
}
