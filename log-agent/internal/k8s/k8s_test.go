package k8s

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
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

	"github.com/agentfleet/log-agent/internal/project"
	"github.com/agentfleet/log-agent/internal/tail"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "eyJhbGciOiJSUzI1NiJ9.test-token"

// apiServer answers the pods list and watch of the documented API over
// TLS, checking the token and the selectors.
type apiServer struct {
	*httptest.Server
	mu      sync.Mutex
	lists   int
	watches []string // resourceVersions asked
	events  chan string
	bad     []string
}

func newAPIServer(t *testing.T) *apiServer {
	s := &apiServer{events: make(chan string, 16)}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.events)
		s.Server.Close()
	})
	return s
}

func (s *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	if r.Header.Get("Authorization") != "Bearer "+token {
		s.mu.Unlock()
		w.WriteHeader(401)
		w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`))
		return
	}
	if r.URL.Path != "/api/v1/namespaces/shop/pods" || q.Get("labelSelector") != "app in (web,api)" ||
		q.Get("fieldSelector") != "spec.nodeName=node-1" {
		s.bad = append(s.bad, r.URL.String())
	}
	watch := q.Get("watch") == "1"
	if watch {
		s.watches = append(s.watches, q.Get("resourceVersion"))
	} else {
		s.lists++
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !watch {
		b, _ := os.ReadFile(filepath.Join("testdata", "podlist.json"))
		w.Write(b)
		return
	}
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-s.events:
			if !ok || ev == "" {
				return // the server's timeout: the stream ends
			}
			w.Write([]byte(ev + "\n"))
			w.(http.Flusher).Flush()
		}
	}
}

func watchEvents(t *testing.T) []string {
	f, err := os.Open(filepath.Join("testdata", "watch.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func podDir(root, ns, pod, uid, ctr string) string {
	return filepath.Join(root, "var/log/pods", ns+"_"+pod+"_"+uid, ctr)
}

func copyFile(t *testing.T, src, dst string) {
	b, err := os.ReadFile(filepath.Join("testdata", "pods", src))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPodsOfNode lists and watches the pods over TLS with a bearer token,
// reads their CRI logs under /var/log/pods (joining partial lines),
// follows pod churn and counts the pods.
func TestPodsOfNode(t *testing.T) {
	srv := newAPIServer(t)
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	caJSON, _ := json.Marshal(ca)
	p, err := project.Decode([]byte(`{"name":"shop","type":"k8s","namespace":"shop","apps":["web","api"],"api":"` +
		srv.URL + `","token":"` + token + `","ca":` + string(caJSON) + `,"read_from":"beginning","interval":1}`))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	web := podDir(root, "shop", "web-7d9c6b5f4-x2k8q", "0f6b1c1e-6a51-4c1b-9d7e-2f1d3c4b5a61", "nginx")
	copyFile(t, "nginx-0.log", filepath.Join(web, "0.log"))
	copyFile(t, "nginx-0.log.rotated", filepath.Join(web, "0.log.20261206-034500"))
	copyFile(t, "sidecar-1.log", filepath.Join(filepath.Dir(web), "sidecar", "1.log"))
	newPod := podDir(root, "shop", "web-7d9c6b5f4-m4n5b", "d4e5f607-1829-43a4-b5c6-d7e8f9011223", "nginx")
	copyFile(t, "nginx-new-0.log", filepath.Join(newPod, "0.log"))

	d := NewDiscovery(Options{Project: p, Node: "node-1", PodsDir: "/var/log/pods",
		Backoff: &backoff.Backoff{Min: time.Millisecond, Max: 20 * time.Millisecond}})
	_, s := collectortest.Run(t, p, root, d)

	nginx := "shop/web-7d9c6b5f4-x2k8q/nginx"
	want := []string{
		"line from before the kubelet rotated 0.log",
		`10.244.1.1 - - [06/Dec/2026:03:50:13 +0000] "GET / HTTP/1.1" 200 615 "-" "kube-probe/1.29"`,
		"2026/12/06 03:50:14 [notice] 1#1: start worker processes",
		"a very long line the runtime split: part one, part two, part three",
		"",
		"2026/12/06 03:50:17 [warn] upstream timed out",
	}
	eventually.True(t, "nginx's lines", func() bool { return len(s.Texts(nginx)) >= len(want) })
	got := s.Texts(nginx)
	slices.Sort(got)
	sorted := slices.Clone(want)
	slices.Sort(sorted)
	if !slices.Equal(got, sorted) {
		t.Fatalf("nginx:\n got %q\nwant %q", got, sorted)
	}
	eventually.True(t, "sidecar's line", func() bool { return len(s.Texts("shop/web-7d9c6b5f4-x2k8q/sidecar")) == 1 })
	if n := d.Info()[0]["pods"]; n != 2 {
		t.Fatalf("pods = %v, want 2 (web and api on node-1; the node-2 pod is not ours)", n)
	}

	ev := watchEvents(t)
	srv.events <- ev[0] // ADDED: a new web pod
	eventually.True(t, "the new pod's line", func() bool { return len(s.Texts("shop/web-7d9c6b5f4-m4n5b/nginx")) == 1 })
	eventually.True(t, "3 pods", func() bool { return d.Info()[0]["pods"] == 3 })
	srv.events <- ev[1] // BOOKMARK
	srv.events <- ev[2] // DELETED: the first web pod
	eventually.True(t, "2 pods", func() bool { return d.Info()[0]["pods"] == 2 })
	srv.events <- ev[3] // ERROR 410: list again
	eventually.True(t, "a second list", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.lists >= 2
	})
	srv.mu.Lock()
	watches, bad := slices.Clone(srv.watches), slices.Clone(srv.bad)
	srv.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("requests without the selectors: %v", bad)
	}
	if len(watches) == 0 || watches[0] != "104571" {
		t.Fatalf("watches from %v, want the list's resourceVersion 104571 first", watches)
	}
	// Nothing was read twice across the churn.
	if n := len(s.Texts(nginx)); n != len(want) {
		t.Fatalf("nginx: %d records, want %d", n, len(want))
	}
}

func TestBadTokenReported(t *testing.T) {
	srv := newAPIServer(t)
	p, err := project.Decode([]byte(`{"name":"shop","type":"k8s","namespace":"shop","apps":["web","api"],"api":"` +
		srv.URL + `","token":"wrong"}`))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDiscovery(Options{Project: p, Node: "node-1", Transport: srv.Client().Transport,
		Backoff: &backoff.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func([]tail.Spec) {}) }()
	eventually.True(t, "the error in the info", func() bool {
		e, _ := d.Info()[0]["error"].(string)
		return strings.Contains(e, "401 Unauthorized: Unauthorized")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
