//go:build linux

package e2e

// Hostile clients against the real server (issue #13, items 1, 4, 5 and 6):
// each test reproduces one hole found by a black-box review and checks
// that it stays closed.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/layout/layouttest"
	"github.com/agentfleet/agent-server/servertest"

	"github.com/agentfleet/jkframe/eventually"
)

// impostorCome connects to /ws/agent as id with the given caps, secret
// and token ("" = no Authorization header) and returns the handshake the
// server answered, with the connection (closed at the end of the test).
func impostorCome(t *testing.T, ts *testServer, token string, come *protocol.Come) (*protocol.Handshake, *websocket.Conn) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+"/ws/agent", h)
	if err != nil {
		t.Fatalf("dial: %v %v", resp, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	b, err := protocol.Encode(&protocol.Msg{Type: protocol.TypeCome, Payload: come})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read handshake: %v", err)
	}
	m, err := protocol.Decode(data)
	if err != nil || m.Handshake() == nil {
		t.Fatalf("first frame is not a handshake: %s (%v)", data, err)
	}
	return m.Handshake(), c
}

// TestHostileAgentImpersonation: with the enrollment token (or, under
// allow_legacy_agents, without one), a client that leaves auth.v1 out of
// its caps must not take over the id of an agent that has a secret while
// that agent is offline: no session, no commands, no rewritten labels or
// version.
func TestHostileAgentImpersonation(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		name := "legacy off"
		if legacy {
			name = "legacy on"
		}
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, serverSpec{mod: func(c *config.Config) { c.AllowLegacyAgents = legacy }})
			real := startAgent(t, ts.addr, agentSpec{name: "exec-agent", id: "web-1", labels: []string{"env=prod"}})
			ts.waitOnline("web-1")
			real.stop(t)
			ts.waitOffline("web-1")

			attempts := []struct {
				name  string
				token string
				caps  []string
			}{
				{"token, no caps", agentToken, nil},
				{"token, empty caps", agentToken, []string{}},
				{"token, ack and stream", agentToken, []string{protocol.CapAck, protocol.CapStream}},
				{"token, auth.v1 without secret", agentToken, []string{protocol.CapAuth, protocol.CapAck}},
			}
			if legacy {
				attempts = append(attempts, struct {
					name  string
					token string
					caps  []string
				}{"no token, no caps", "", nil})
			}
			for _, a := range attempts {
				come := &protocol.Come{ID: "web-1", Name: "exec-agent", Version: "6.6.6", OS: "linux", Caps: a.caps,
					Labels: map[string]string{"env": "pwned"}}
				hs, c := impostorCome(t, ts, a.token, come)
				if hs.OK {
					t.Errorf("%s: impostor accepted", a.name)
				} else if hs.Msg == "" {
					t.Errorf("%s: refusal without a message", a.name)
				}
				// The command an operator sends now must not reach it.
				e := ts.json("POST", "/api/exec/web-1/run", map[string]any{"cmd": "id", "auth": "sudo", "user": "root", "pass": "hunter2", "timeout": 1})
				if e.status != http.StatusNotFound {
					t.Errorf("%s: exec on web-1 while only the impostor tried: %d %s", a.name, e.status, e.Msg)
				}
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				for {
					_, data, err := c.ReadMessage()
					if err != nil {
						break
					}
					if strings.Contains(string(data), "hunter2") || strings.Contains(string(data), `"type":10`) {
						t.Errorf("%s: the impostor received a command: %s", a.name, data)
					}
				}
				c.Close()
			}
			got := ts.get("/api/agents/web-1")
			ag := decode[apiAgent](t, got)
			if ag.Version != "1.2.3" || ag.Labels["env"] != "prod" || ag.IsOnline {
				t.Errorf("web-1 after the impostors: version %q, labels %v, online %v", ag.Version, ag.Labels, ag.IsOnline)
			}
		})
	}
}

// TestHostileLayoutPullDst: a pull step whose dst leaves the task's result
// area is refused when the archive is checked (400 naming the step),
// before anything runs, instead of being accepted and failing at run time.
func TestHostileLayoutPullDst(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{name: "exec-agent", id: "ex-1"})
	ts.waitOnline("ex-1")
	for _, dst := range []string{"/etc/cron.d/evil", "../../../evil", "a/../../evil", `C:\evil`, `..\\evil`, "$ID/../../evil", "."} {
		steps := fmt.Sprintf("  - name: grab\n    plugin: file\n    action: pull\n    src: /etc/hostname\n    dst: '%s'\n", dst)
		e := ts.runLayout(t, layouttest.Tar(t, true, mainYAML(steps)), "ids", "ex-1")
		if e.status != http.StatusBadRequest || !strings.Contains(e.Msg, `step 1 "grab"`) || !strings.Contains(e.Msg, "dst") {
			t.Errorf("dst %q: %d %q, want 400 naming step 1 and dst", dst, e.status, e.Msg)
		}
	}
}

// layoutBomb is a tar.gz of main.yaml and n files of size zero bytes each,
// built as a multi-member gzip (one compressed MiB of zeros repeated), so
// that making a 300 MiB bomb costs the test nothing.
func layoutBomb(t testing.TB, n int, size int64) []byte {
	t.Helper()
	member := func(b []byte) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	header := func(name string, size int64) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()[:512] // the header block alone (Flush would want the content)
	}
	const mib = 1 << 20
	zeroMiB := member(make([]byte, mib))
	var out bytes.Buffer
	main := "name: bomb\ntasks:\n  - {name: a, plugin: exec, cmd: 'true'}\n"
	out.Write(member(append(header("main.yaml", int64(len(main))), append([]byte(main), make([]byte, 512-len(main))...)...)))
	for i := range n {
		out.Write(member(header(fmt.Sprintf("zero%d", i), size)))
		for range size / mib {
			out.Write(zeroMiB)
		}
		out.Write(member(make([]byte, size%mib))) // the rest, with the padding below
		if pad := (512 - size%512) % 512; pad > 0 {
			out.Write(member(make([]byte, pad)))
		}
	}
	out.Write(member(make([]byte, 1024))) // end of archive
	return out.Bytes()
}

// TestHostileLayoutBomb: a 300 KB tar.gz that unpacks to 300 MiB (five
// 60 MiB files, each under the 64 MiB file limit) is refused with 400 once
// it goes over the 256 MiB limit, without the server holding the content
// in memory: what the server allocates stays a few MiB, two at once too,
// and the spooled files are gone afterwards. (Six at once, and the peak
// RSS, are in BenchmarkLayoutBombRSS: inflating 6 × 240 MiB under -race
// is too much for the test suite.)
func TestHostileLayoutBomb(t *testing.T) {
	data := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: data})
	startAgent(t, ts.addr, agentSpec{name: "exec-agent", id: "ex-1"})
	ts.waitOnline("ex-1")
	bomb := layoutBomb(t, 5, 60<<20)
	if len(bomb) > 400<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	// Each bomb inflates 240 MiB to disk before it is refused: slow on a
	// busy machine under -race, so no client timeout.
	ts.client.Timeout = 0
	parallels := []int{1, 2}
	if tasksRace {
		parallels = parallels[:1]
	}
	for _, parallel := range parallels {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var wg sync.WaitGroup
		errs := make(chan string, parallel)
		for range parallel {
			wg.Go(func() {
				e := ts.runLayout(t, bomb, "ids", "ex-1")
				if e.status != http.StatusBadRequest || !strings.Contains(e.Msg, `"zero4": the archive unpacks to over 268435456 bytes`) {
					errs <- fmt.Sprintf("%d %q", e.status, e.Msg)
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("parallel %d: %s; want 400 naming the limit", parallel, e)
		}
		runtime.ReadMemStats(&after)
		t.Logf("parallel %d: allocated %.1f MiB", parallel, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
		// Before the fix one bomb allocated 615 MiB (its content, grown).
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(parallel)*16<<20 {
			t.Errorf("parallel %d: the server allocated %d MiB for %d bombs of %d KB", parallel, alloc>>20, parallel, len(bomb)>>10)
		}
		ents, _ := filepath.Glob(filepath.Join(data, "cache", "layout-*"))
		if len(ents) != 0 {
			t.Errorf("spool dirs left: %v", ents)
		}
	}
}

// BenchmarkLayoutBombRSS measures the server process's peak RSS while it
// refuses the 300 KB → 300 MiB layout bomb of TestHostileLayoutBomb, one
// at a time and six at once (Linux: VmHWM, reset through
// /proc/self/clear_refs before each round). Run:
//
//	go test -run '^$' -bench LayoutBombRSS -benchtime 3x -count 5 ./e2e/
func BenchmarkLayoutBombRSS(b *testing.B) {
	ts := benchServer(b)
	bomb := layoutBomb(b, 5, 60<<20)
	post := func() {
		resp, err := ts.client.Do(ts.layoutRequest(opToken, "bomb.tar.gz", bomb, "ids", "nobody"))
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			b.Errorf("status %d", resp.StatusCode)
		}
	}
	for _, parallel := range []int{1, 6} {
		b.Run(fmt.Sprintf("x%d", parallel), func(b *testing.B) {
			var growth, peak float64
			for b.Loop() {
				runtime.GC()
				debug.FreeOSMemory()
				if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
					b.Skipf("cannot reset the peak RSS: %v", err)
				}
				base := servertest.MustProcKB(b, 0, "VmRSS")
				var wg sync.WaitGroup
				for range parallel {
					wg.Go(post)
				}
				wg.Wait()
				hwm := servertest.MustProcKB(b, 0, "VmHWM")
				growth = max(growth, float64(hwm-base)/1024)
				peak = max(peak, float64(hwm)/1024)
			}
			b.ReportMetric(growth, "RSS-growth-MB")
			b.ReportMetric(peak, "peak-RSS-MB")
		})
	}
}

// TestHostileUpload: POST /api/file/{id}/upload against the real
// exec-agent. A name with control characters is 400; setuid, setgid and
// sticky bits asked for are applied, not dropped; an unknown own_user or
// own_group is 422 naming it and leaves no file behind; url= never fetches from the
// server's loopback (or link-local, unspecified) addresses.
func TestHostileUpload(t *testing.T) {
	ts := startServerForReal(t)
	id := realAgents(t, ts, 1)[0]
	dir := t.TempDir()
	up := func(fields map[string]string, body string) envelope {
		t.Helper()
		f := map[string]string{"dir": dir}
		for k, v := range fields {
			f[k] = v
		}
		return ts.multipart("/api/file/"+id+"/upload", f, "upload.bin", body)
	}
	empty := func(what string) {
		t.Helper()
		ents, _ := os.ReadDir(dir)
		if len(ents) != 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("%s: %s holds %q", what, dir, names)
		}
	}

	// Control characters in the name.
	for _, name := range []string{"a\x01b", "line\nfeed", "tab\there", "del\x7f", "esc\x1b[31m", "c1\u0085x"} {
		e := up(map[string]string{"name": name}, "x")
		if e.status != http.StatusBadRequest || !strings.Contains(e.Msg, "invalid parameter name") {
			t.Errorf("name %q: %d %q, want 400 naming name", name, e.status, e.Msg)
		}
	}
	empty("after names with control characters")

	// Special mode bits are applied.
	for _, tc := range []struct {
		mod  string
		want os.FileMode
	}{
		{"4755", 0o755 | os.ModeSetuid},
		{"2750", 0o750 | os.ModeSetgid},
		{"1777", 0o777 | os.ModeSticky},
		{"7777", 0o777 | os.ModeSetuid | os.ModeSetgid | os.ModeSticky},
		{"0640", 0o640},
	} {
		name := "mode-" + tc.mod
		e := up(map[string]string{"name": name, "mod": tc.mod}, "#!/bin/sh\n")
		if e.status != 200 {
			t.Errorf("mod %s: %d %q", tc.mod, e.status, e.Msg)
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != tc.want {
			t.Errorf("mod %s: file mode %v, want %v", tc.mod, got, tc.want)
		}
		_ = os.Remove(filepath.Join(dir, name))
	}
	for _, bad := range []string{"17777", "0o755", "rwx", "-1"} {
		if e := up(map[string]string{"name": "m", "mod": bad}, "x"); e.status != http.StatusBadRequest || !strings.Contains(e.Msg, "invalid parameter mod") {
			t.Errorf("mod %q: %d %q", bad, e.status, e.Msg)
		}
	}

	// Unknown owner: 422 naming the parameter (an agent-detected request
	// error, errkind.v1), and nothing is written.
	for _, tc := range []struct{ key, value string }{
		{"own_user", "no-such-user-4711"},
		{"own_group", "no-such-group-4711"},
	} {
		e := up(map[string]string{"name": "owned", tc.key: tc.value, "mod": "4755"}, "x")
		if e.status != http.StatusUnprocessableEntity || !strings.Contains(e.Msg, tc.key+` "`+tc.value+`"`) {
			t.Errorf("%s=%s: %d %q, want 422 naming %s", tc.key, tc.value, e.status, e.Msg, tc.key)
		}
		empty(tc.key + " unknown")
	}

	// url= pointing at the server's own host.
	var hit bool
	var mu sync.Mutex
	secret := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hit = true
		mu.Unlock()
		_, _ = w.Write([]byte("internal secret"))
	}))
	defer secret.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(secret.URL, "http://"))
	_, apiPort, _ := net.SplitHostPort(ts.addr)
	for _, u := range []string{
		secret.URL + "/latest/meta-data",
		"http://localhost:" + port + "/x",
		"http://[::1]:" + port + "/x",
		"http://127.0.0.2:" + port + "/x",
		"http://0.0.0.0:" + port + "/x",
		"http://[::ffff:127.0.0.1]:" + port + "/x",
		"http://127.0.0.1:" + apiPort + "/healthz",
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://[fe80::1]/x",
	} {
		e := up(map[string]string{"url": u, "name": "fetched"}, "")
		if e.status != http.StatusBadRequest || !strings.Contains(e.Msg, "invalid parameter url") {
			t.Errorf("url %s: %d %q, want 400 naming url", u, e.status, e.Msg)
		}
	}
	mu.Lock()
	if hit {
		t.Error("the server fetched from its own loopback")
	}
	mu.Unlock()
	empty("after url uploads")
}

// TestHostileSecretReset: the operator's way out when an agent lost its
// state file: DELETE /api/agents/{id}/secret (operators only, audited).
// After it the id enrols again and gets a new secret; the old one no
// longer proves anything.
func TestHostileSecretReset(t *testing.T) {
	ts := startServer(t, serverSpec{})
	first, c := impostorCome(t, ts, agentToken, &protocol.Come{ID: "web-2", Name: "exec-agent", Version: "1", Caps: []string{protocol.CapAuth}})
	if !first.OK || first.Secret == "" {
		t.Fatalf("first handshake %+v", first)
	}
	c.Close()
	eventually.Within(t, 30*time.Second, "web-2 offline", func() bool { _, ok := ts.srv.Hub().Session("web-2"); return !ok })

	if e := ts.do("DELETE", "/api/agents/web-2/secret", roToken, nil); e.status != http.StatusForbidden {
		t.Errorf("read-only reset: %d %s", e.status, e.Msg)
	}
	if e := ts.do("DELETE", "/api/agents/nobody/secret", opToken, nil); e.status != http.StatusNotFound {
		t.Errorf("reset of an unknown agent: %d %s", e.status, e.Msg)
	}
	e := ts.do("DELETE", "/api/agents/web-2/secret", opToken, nil)
	if e.status != 200 || string(e.Payload) != `{"id":"web-2","had_secret":true}` {
		t.Fatalf("reset: %d %s", e.status, e.body)
	}
	again, c2 := impostorCome(t, ts, agentToken, &protocol.Come{ID: "web-2", Name: "exec-agent", Version: "1", Caps: []string{protocol.CapAuth}})
	if !again.OK || again.Secret == "" || again.Secret == first.Secret {
		t.Fatalf("after the reset: %+v", again)
	}
	c2.Close()
	eventually.Within(t, 30*time.Second, "web-2 offline", func() bool { _, ok := ts.srv.Hub().Session("web-2"); return !ok })
	old, _ := impostorCome(t, ts, agentToken, &protocol.Come{ID: "web-2", Name: "exec-agent", Version: "1", Caps: []string{protocol.CapAuth}, Secret: first.Secret})
	if old.OK || old.Msg != protocol.MsgBadSecret {
		t.Errorf("the old secret after the reset: %+v", old)
	}
	a := ts.get("/api/audit?size=100")
	if !strings.Contains(string(a.Payload), "DELETE /api/agents/{id}/secret") {
		t.Errorf("reset not audited: %s", a.Payload)
	}
}
