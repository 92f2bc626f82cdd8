//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestInstall installs a tar.gz the agents download: the live action log
// per agent, exit 0; a wrong sha256 refused before anything is unpacked,
// exit 1; a fleet install on a selector.
func TestInstall(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	body := "installed by agentctl\n"
	if err := tw.WriteHeader(&tar.Header{Name: "app/hello.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(body))
	_ = tw.Close()
	_ = zw.Close()
	pkg := buf.Bytes()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pkg) }))
	defer web.Close()
	url := web.URL + "/app-1.0.tar.gz"

	dir := filepath.Join(t.TempDir(), "one")
	r := fleet.ok(t, "install", "e2e-a1", "--url", url, "--dir", dir)
	for _, want := range []string{"e2e-a1 | download " + url, "e2e-a1 | install  " + url, "e2e-a1 | file     " + filepath.Join(dir, "app/hello.txt"), "e2e-a1 | done"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "app/hello.txt")); err != nil || string(b) != body {
		t.Errorf("unpacked: %q %v", b, err)
	}

	// -o json: each host's output is its action log, one JSON action a line.
	r = fleet.ok(t, "install", "e2e-a1", "--url", url, "--dir", filepath.Join(t.TempDir(), "json"), "-o", "json")
	var view struct {
		Agents []struct{ Agent, Output string }
	}
	if err := json.Unmarshal([]byte(r.out), &view); err != nil || len(view.Agents) != 1 || strings.Count(view.Agents[0].Output, "\n") != 4 ||
		!strings.HasPrefix(view.Agents[0].Output, `{"n":0,"action":"download",`) || !strings.Contains(view.Agents[0].Output, `"action":"done"`) {
		t.Errorf("-o json: %v\n%s", err, r.out)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	r = fleet.ctl(t, ctlOpts{}, "install", "e2e-a2", "--url", url, "--dir", bad, "--sha256", strings.Repeat("0", 64))
	if r.code != 1 || !strings.Contains(r.out, "FAILED: checksum mismatch") {
		t.Errorf("wrong sha256: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Errorf("%s created: something was unpacked", bad)
	}

	many := filepath.Join(t.TempDir(), "many")
	r = fleet.ok(t, "install", "-l", "e2e=yes", "--concurrency", "1", "--url", url, "--dir", many)
	if n := strings.Count(r.out, "| done "); n != 3 {
		t.Errorf("%d done actions, want 3:\n%s", n, r.out)
	}
	if !regexp.MustCompile(`task \w+ done: 3 agent\(s\): 3 ok`).MatchString(r.err) {
		t.Errorf("stderr:\n%s", r.err)
	}
}

// streamGate is a reverse proxy to the fleet's server that holds each
// event stream (GET /api/tasks/{id}/events) until hold(id) is true, and
// closes opened once the server answered it (the server subscribes before
// it answers): a test orders a task's end and the opening of agentctl's
// stream with it, without timing luck.
type streamGate struct {
	url    string
	opened chan struct{}
}

var eventsPath = regexp.MustCompile(`^/api/tasks/([^/]+)/events$`)

func newStreamGate(t *testing.T, hold func(task string) bool) *streamGate {
	t.Helper()
	target, err := url.Parse(fleet.url)
	if err != nil {
		t.Fatal(err)
	}
	g := &streamGate{opened: make(chan struct{})}
	var once sync.Once
	tr := &http.Transport{}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport:     tr,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if eventsPath.MatchString(resp.Request.URL.Path) {
				once.Do(func() { close(g.opened) })
			}
			return nil
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := eventsPath.FindStringSubmatch(r.URL.Path); m != nil {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(2 * time.Minute)
			for !hold(m[1]) {
				select {
				case <-r.Context().Done():
					return
				case <-deadline:
					t.Errorf("the event stream of task %s was held for 2 minutes", m[1])
					http.Error(w, "held too long", http.StatusGatewayTimeout)
					return
				case <-tick.C:
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	g.url = srv.URL
	return g
}

// taskResults returns a task's state and its agents' states.
func taskResults(t *testing.T, id string) (string, map[string]string) {
	t.Helper()
	var v struct {
		State  string
		Agents []struct{ Agent, State string }
	}
	if err := fleet.api("GET", "/api/tasks/"+id, nil, &v); err != nil {
		t.Errorf("task %s: %v", id, err)
		return "", nil
	}
	m := map[string]string{}
	for _, a := range v.Agents {
		m[a.Agent] = a.State
	}
	return v.State, m
}

// TestInstallStreamOrder: agentctl install shows every action of every
// host exactly once, in order, whether the task ends before its event
// stream opens, a host ends before it and the others after, or every host
// ends after it. The order is forced: a proxy holds the stream, and the
// package server holds downloads until the stream is open.
func TestInstallStreamOrder(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	body := "ordered\n"
	if err := tw.WriteHeader(&tar.Header{Name: "app/o.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(body))
	_ = tw.Close()
	_ = zw.Close()
	pkg := buf.Bytes()

	final := map[string]bool{"ok": true, "failed": true, "timed_out": true, "skipped": true, "lost": true}
	for _, c := range []struct {
		name string
		// hold: the stream opens when it is false; free: how many
		// downloads are served before the stream is open.
		hold func(t *testing.T, task string) bool
		free int
	}{
		{"task ended before the stream", func(t *testing.T, task string) bool {
			st, _ := taskResults(t, task)
			return st == "done" || st == "failed" || st == "cancelled"
		}, 1 << 30},
		{"one host ended before the stream", func(t *testing.T, task string) bool {
			_, hosts := taskResults(t, task)
			for _, s := range hosts {
				if final[s] {
					return true
				}
			}
			return false
		}, 1},
		{"stream open before any host ended", func(*testing.T, string) bool { return true }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newStreamGate(t, func(task string) bool { return c.hold(t, task) })
			var mu sync.Mutex
			served := 0
			web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				served++
				n := served
				mu.Unlock()
				if n > c.free {
					select {
					case <-g.opened:
					case <-r.Context().Done():
						return
					}
				}
				_, _ = w.Write(pkg)
			}))
			defer web.Close()
			dir := filepath.Join(t.TempDir(), "o")
			r := fleet.ctl(t, ctlOpts{env: []string{"AGENTCTL_SERVER=" + g.url}},
				"install", "-l", "e2e=yes", "--concurrency", "1", "--url", web.URL+"/app-1.0.tar.gz", "--dir", dir)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
			}
			select {
			case <-g.opened:
			default:
				t.Fatal("agentctl never opened the event stream")
			}
			byHost := map[string][]string{}
			for _, l := range strings.Split(strings.TrimSuffix(r.out, "\n"), "\n") {
				if l == "" {
					continue // no output at all: the hosts' check says so
				}
				host, act, ok := strings.Cut(l, " | ")
				if !ok {
					t.Fatalf("not a host's line: %q\n%s", l, r.out)
				}
				byHost[host] = append(byHost[host], strings.Fields(act)[0])
			}
			for _, a := range execAgents {
				if got := strings.Join(byHost[a.id], " "); got != "download install file done" {
					t.Errorf("%s: actions %q, want each of download install file done once, in order:\n%s", a.id, got, r.out)
				}
			}
			if len(byHost) != len(execAgents) {
				t.Errorf("hosts %v:\n%s", byHost, r.out)
			}
		})
	}
}
