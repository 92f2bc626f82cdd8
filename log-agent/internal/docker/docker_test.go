package docker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/log-agent/internal/collector/collectortest"
	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent/logship"

	"github.com/agentfleet/log-agent/internal/collector"
	"github.com/agentfleet/log-agent/internal/project"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// engine speaks the Docker Engine API on a real unix socket with the
// responses captured from a real daemon (testdata/README.md).
type engine struct {
	t       *testing.T
	sock    string
	srv     *http.Server
	mu      sync.Mutex
	running map[string]bool // container ids listed as running
	inspect map[string][]byte
	events  chan []byte
	reqs    []string
}

func newEngine(t *testing.T) *engine {
	e := &engine{t: t, running: map[string]bool{}, inspect: map[string][]byte{}, events: make(chan []byte, 16)}
	for _, name := range []string{"web-1", "api-1", "longline", "rot"} {
		b, err := os.ReadFile(filepath.Join("testdata", "engine", "inspect-"+name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var in inspect
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatal(err)
		}
		e.inspect[in.ID] = b
		e.inspect[name] = b
		e.running[in.ID] = true
	}
	dir, err := os.MkdirTemp("", "dk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e.sock = filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", e.file("version.json"))
	mux.HandleFunc("GET /v1.41/containers/json", e.list)
	mux.HandleFunc("GET /v1.41/containers/{id}/json", e.inspectOne)
	mux.HandleFunc("GET /v1.41/events", e.stream)
	e.srv = &http.Server{Handler: e.log(mux)}
	go e.srv.Serve(ln)
	t.Cleanup(func() {
		close(e.events)
		e.srv.Close()
	})
	return e
}

func (e *engine) log(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.reqs = append(e.reqs, r.Method+" "+r.URL.RequestURI())
		e.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (e *engine) file(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join("testdata", "engine", name))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Api-Version", "1.41")
		w.Write(b)
	}
}

func (e *engine) list(w http.ResponseWriter, r *http.Request) {
	b, _ := os.ReadFile(filepath.Join("testdata", "engine", "containers.json"))
	var all []map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	e.mu.Lock()
	var out []map[string]any
	for _, c := range all {
		if e.running[c["Id"].(string)] {
			out = append(out, c)
		}
	}
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (e *engine) inspectOne(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	b, ok := e.inspect[r.PathValue("id")]
	e.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		fmt.Fprintf(w, `{"message":"No such container: %s"}`, r.PathValue("id"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (e *engine) stream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-e.events:
			if !ok {
				return
			}
			w.Write(ev)
			w.(http.Flusher).Flush()
		}
	}
}

// event returns the captured event of a container and action.
func capturedEvent(t *testing.T, name, action string) []byte {
	f, err := os.Open(filepath.Join("testdata", "engine", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Action == action && ev.Actor.Attributes["name"] == name {
			return append(slices.Clone(sc.Bytes()), '\n')
		}
	}
	t.Fatalf("no %s event of %s in the capture", action, name)
	return nil
}

// layOut copies the captured json-file logs (and web-1's file) to where
// the inspects say they are, under root.
func layOut(t *testing.T, root string) map[string]string {
	paths := map[string]string{}
	for _, name := range []string{"web-1", "longline", "rot"} {
		b, _ := os.ReadFile(filepath.Join("testdata", "engine", "inspect-"+name+".json"))
		var in inspect
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatal(err)
		}
		paths[name] = root + in.LogPath
		if err := os.MkdirAll(filepath.Dir(root+in.LogPath), 0o755); err != nil {
			t.Fatal(err)
		}
		matches, _ := filepath.Glob(filepath.Join("testdata", "jsonfile", name+"-json.log*"))
		for _, m := range matches {
			data, _ := os.ReadFile(m)
			suffix := strings.TrimPrefix(filepath.Base(m), name+"-json.log")
			if err := os.WriteFile(root+in.LogPath+suffix, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if name == "web-1" {
			dir := root + in.GraphDriver.Data["MergedDir"] + "/var/log/app"
			os.MkdirAll(dir, 0o755)
			data, _ := os.ReadFile(filepath.Join("testdata", "rootfs", "web-1", "app.log"))
			os.WriteFile(dir+"/app.log", data, 0o644)
			paths["web-1:app"] = dir + "/app.log"
		}
	}
	return paths
}

func run(t *testing.T, e *engine, root, js string) (*collector.Collector, *Discovery, *collectortest.Sink) {
	t.Helper()
	p, err := project.Decode([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDiscovery(Options{Project: p, Socket: e.sock, HostRoot: root, Backoff: &backoff.Backoff{Min: time.Millisecond, Max: 20 * time.Millisecond}})
	c, s := collectortest.Run(t, p, root, d)
	return c, d, s
}

// jsonLines decodes a json-file log the way the agent must.
func jsonLines(t *testing.T, paths ...string) (out []string) {
	var part string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			var d dockerLine
			if err := json.Unmarshal(l, &d); err != nil {
				t.Fatal(err)
			}
			part += d.Log
			if strings.HasSuffix(part, "\n") {
				out = append(out, strings.TrimSuffix(part, "\n"))
				part = ""
			}
		}
	}
	return out
}

type dockerLine struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

// TestContainersStdout follows the json-file logs of the containers named
// by the project, through the captured API answers and events.
func TestContainersStdout(t *testing.T) {
	e := newEngine(t)
	root := t.TempDir()
	paths := layOut(t, root)
	_, d, s := run(t, e, root, `{"name":"dk","type":"docker","containers":["web-*","longline","rot"],"read_from":"beginning","interval":1}`)

	web := jsonLines(t, paths["web-1"])
	eventually.True(t, "web-1's lines", func() bool { return len(s.Of("web-1")) >= len(web) })
	if got := s.Texts("web-1"); !slices.Equal(got, web) {
		t.Fatalf("web-1: %d lines, want %d\n got %q\nwant %q", len(got), len(web), got[:min(3, len(got))], web[:3])
	}
	var out, errs int
	for _, r := range s.Of("web-1") {
		switch r.Stream {
		case logship.StreamStdout:
			out++
		case logship.StreamStderr:
			errs++
		}
		if r.Time < time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() {
			t.Fatalf("record time %d is not the log's", r.Time)
		}
	}
	if out == 0 || errs == 0 {
		t.Fatalf("streams: %d stdout, %d stderr", out, errs)
	}

	// The 29 KB line the daemon split into 16 KiB partials comes out whole.
	long := jsonLines(t, paths["longline"])
	eventually.True(t, "longline's lines", func() bool { return len(s.Of("longline")) >= len(long) })
	if got := s.Texts("longline"); !slices.Equal(got, long) || len(got[0]) < 16<<10 {
		t.Fatalf("longline: %d records (first %d bytes), want %d", len(got), len(got[0]), len(long))
	}

	// rot's three files (the driver's rotations; max-file=3 deleted the
	// older ones) give each of their lines once.
	rot := jsonLines(t, paths["rot"]+".2", paths["rot"]+".1", paths["rot"])
	eventually.True(t, "rot's lines", func() bool { return len(s.Of("rot")) >= len(rot) })
	got := s.Texts("rot")
	slices.Sort(got)
	slices.Sort(rot)
	if !slices.Equal(got, rot) {
		t.Fatalf("rot: %d lines, want the %d of its files", len(got), len(rot))
	}
	if n := len(s.Of("api-1")); n != 0 {
		t.Fatalf("api-1 does not match the project but gave %d lines", n)
	}
	info := d.Info()[0]
	if info["containers"] != 3 || !slices.Equal(info["names"].([]string), []string{"longline", "rot", "web-1"}) {
		t.Fatalf("info = %v", info)
	}

	// web-1 dies: released. A line written while it is stopped, then a
	// start: the line arrives once, nothing before it again.
	e.mu.Lock()
	delete(e.running, "963008e9c4ccd517b602cd4863432aca2aab23c5bac4b6379817da82aee2f525")
	e.mu.Unlock()
	e.events <- capturedEvent(t, "web-1", "die")
	eventually.True(t, "web-1 released", func() bool { return d.Info()[0]["containers"] == 2 })
	f, err := os.OpenFile(paths["web-1"], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `{"log":"after restart\n","stream":"stdout","time":"2026-12-06T05:00:00.000000001Z"}`+"\n")
	f.Close()
	e.mu.Lock()
	e.running["963008e9c4ccd517b602cd4863432aca2aab23c5bac4b6379817da82aee2f525"] = true
	e.mu.Unlock()
	e.events <- capturedEvent(t, "web-1", "start")
	eventually.True(t, "the line written across the restart", func() bool { return len(s.Of("web-1")) >= len(web)+1 })
	all := s.Texts("web-1")
	if !slices.Equal(all, append(web, "after restart")) {
		t.Fatalf("after the restart: %d lines, last %q", len(all), all[len(all)-1])
	}
	e.mu.Lock()
	reqs := strings.Join(e.reqs, "\n")
	e.mu.Unlock()
	for _, want := range []string{"GET /version", "GET /v1.41/containers/json", "GET /v1.41/events?filters=", "GET /v1.41/containers/963008e9c4ccd517b602cd4863432aca2aab23c5bac4b6379817da82aee2f525/json"} {
		if !strings.Contains(reqs, want) {
			t.Errorf("no request %q in\n%s", want, reqs)
		}
	}
}

// TestContainerTagsAndDir: tags select by image tag; dir reads files
// inside the container through its merged root filesystem.
func TestContainerTagsAndDir(t *testing.T) {
	e := newEngine(t)
	root := t.TempDir()
	paths := layOut(t, root)
	_, d, _ := run(t, e, root, `{"name":"tags","type":"docker","containers":["*"],"tags":["2.0"]}`)
	eventually.True(t, "api-1 alone", func() bool {
		n, _ := d.Info()[0]["names"].([]string)
		return slices.Equal(n, []string{"api-1"})
	})

	_, _, s := run(t, e, root, `{"name":"dir","type":"docker","containers":["web-1"],"dir":"/var/log/app/*.log","read_from":"beginning","interval":1}`)
	data, _ := os.ReadFile(paths["web-1:app"])
	want := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	eventually.True(t, "web-1's app.log", func() bool { return len(s.Of("web-1:/var/log/app/app.log")) >= len(want) })
	if got := s.Texts("web-1:/var/log/app/app.log"); !slices.Equal(got, want) {
		t.Fatalf("app.log: %q", got[:min(3, len(got))])
	}
}

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"nginx": "latest", "nginx:1.25": "1.25", "registry:5000/app": "latest", "registry:5000/app:v2": "v2",
		"app@sha256:abcd": "", "sha256:b41d2bfa": "", "logdemo:2.0": "2.0",
	} {
		if got := ImageTag(in); got != want {
			t.Errorf("ImageTag(%q) = %q, want %q", in, got, want)
		}
	}
}
