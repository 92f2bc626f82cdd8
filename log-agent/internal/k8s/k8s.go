// Package k8s finds the pods of a k8s project on this node through the
// Kubernetes API and keeps the tailer's specs in step with them.
//
// The pods are those of the project's namespace whose "app" label is one
// of its apps, on this node: a list, then a watch from the list's
// resourceVersion, both with
//
//	labelSelector=app in (<apps>)&fieldSelector=spec.nodeName=<node>
//
// (GET /api/v1/namespaces/<ns>/pods, with watch=1 and
// allowWatchBookmarks=true for the watch), authenticated with the
// project's bearer token, verified with its CA when it has one. A watch
// that ends is resumed from the last resourceVersion seen (bookmarks keep
// it fresh); 410 Gone (an ERROR event or the status) takes the list again.
//
// What is read of a pod, per container:
//
//   - without dir: the container's log files the kubelet writes,
//     <pods dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log and
//     their rotations (<n>.log.<timestamp>; compressed ones are skipped),
//     in the CRI format ("<time> <stream> <P|F> <content>", P lines joined);
//   - with dir: the files matching dir inside the container's root
//     filesystem, <containerd root>/<container id>/rootfs (containerd;
//     other runtimes are reported as an error in the status).
//
// A pod deleted (or no longer matching) is released: its files are read to
// their end and closed. The number of pods followed is the seed's "pods".
package k8s

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/jkframe/backoff"

	"github.com/agentfleet/log-agent/internal/project"
	"github.com/agentfleet/log-agent/internal/tail"
)

// Options configure a Discovery.
type Options struct {
	Project *project.Project
	// Node is this node's name (spec.nodeName); default: the host name.
	Node string
	// PodsDir is the kubelet's pod log folder (default /var/log/pods).
	PodsDir string
	// ContainerdRoot holds the containers' bundles (<id>/rootfs).
	ContainerdRoot string
	// HostRoot: the files are looked for under it (the tailer's Root).
	HostRoot string
	Log      *slog.Logger
	Backoff  *backoff.Backoff
	// Timeout bounds the list request (default 30 s).
	Timeout time.Duration
	// WatchTimeout is the server-side timeout asked for a watch (default
	// 5 min).
	WatchTimeout time.Duration
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// Discovery follows a k8s project's pods.
type Discovery struct {
	opts Options
	hc   *http.Client
	herr error // building the client failed

	mu   sync.Mutex
	pods map[string]*Pod // by uid
	rv   string
	err  string
}

// Pod is the part of a Kubernetes Pod used.
type Pod struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		NodeName   string `json:"nodeName"`
		Containers []struct {
			Name string `json:"name"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Phase             string `json:"phase"`
		ContainerStatuses []struct {
			Name        string `json:"name"`
			ContainerID string `json:"containerID"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

// NewDiscovery returns the discovery for opts.
func NewDiscovery(opts Options) *Discovery {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Backoff == nil {
		opts.Backoff = &backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.WatchTimeout <= 0 {
		opts.WatchTimeout = 5 * time.Minute
	}
	if opts.Node == "" {
		opts.Node, _ = os.Hostname()
	}
	if opts.PodsDir == "" {
		opts.PodsDir = "/var/log/pods"
	}
	d := &Discovery{opts: opts, pods: map[string]*Pod{}}
	tr := opts.Transport
	if tr == nil {
		tlsc := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca := opts.Project.CA; ca != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(ca)) {
				d.herr = errors.New("ca: no certificate in the PEM")
			}
			tlsc.RootCAs = pool
		}
		tr = &http.Transport{TLSClientConfig: tlsc, ResponseHeaderTimeout: opts.Timeout, MaxIdleConns: 2,
			IdleConnTimeout: time.Minute}
	}
	d.hc = &http.Client{Transport: tr}
	return d
}

// Info is the seed's task_info entry: ns, name (apps), dir and pods.
func (d *Discovery) Info() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.opts.Project
	m := map[string]any{"ns": p.Namespace, "name": strings.Join(p.Apps, ","), "dir": p.Dir, "pods": len(d.pods)}
	if d.err != "" {
		m["error"] = d.err
	}
	return []map[string]any{m}
}

// Pods returns how many pods are followed.
func (d *Discovery) Pods() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pods)
}

// Run keeps set up to date until ctx is done.
func (d *Discovery) Run(ctx context.Context, set func([]tail.Spec)) error {
	if d.herr != nil {
		d.setErr(d.herr)
		<-ctx.Done()
		return nil
	}
	bo := d.opts.Backoff
	relist := true
	for {
		var err error
		if relist {
			err = d.list(ctx)
			if err == nil {
				relist = false
				d.publish(set)
			}
		}
		if err == nil {
			err = d.watch(ctx, set)
			if errors.Is(err, errGone) {
				relist = true
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.setErr(err)
			d.opts.Log.Warn("k8s: API failed; retrying", "project", d.opts.Project.Name, "err", err)
			bo.Disconnected(time.Now())
			if bo.Wait(ctx, nil) != nil {
				return nil
			}
		}
	}
}

func (d *Discovery) setErr(err error) {
	d.mu.Lock()
	d.err = err.Error()
	d.mu.Unlock()
}

var errGone = errors.New("resourceVersion too old (410 Gone)")

// query is the pods URL with the selectors.
func (d *Discovery) query(extra url.Values) string {
	p := d.opts.Project
	q := url.Values{}
	q.Set("labelSelector", "app in ("+strings.Join(p.Apps, ",")+")")
	q.Set("fieldSelector", "spec.nodeName="+d.opts.Node)
	for k, v := range extra {
		q[k] = v
	}
	return strings.TrimSuffix(p.API, "/") + "/api/v1/namespaces/" + url.PathEscape(p.Namespace) + "/pods?" + q.Encode()
}

func (d *Discovery) request(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if tok := d.opts.Project.Token; tok != "" {
		req.Header.Set("Authorization", "Bearer "+string(tok))
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusGone {
		resp.Body.Close()
		return nil, errGone
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("%s", statusError(resp))
	}
	return resp, nil
}

// statusError is the API's Status message or the HTTP status.
func statusError(resp *http.Response) string {
	var st struct {
		Message string `json:"message"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &st) == nil && st.Message != "" {
		return resp.Status + ": " + st.Message
	}
	return resp.Status
}

func (d *Discovery) list(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	resp, err := d.request(lctx, d.query(nil))
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	defer resp.Body.Close()
	var pl struct {
		Kind     string `json:"kind"`
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []*Pod `json:"items"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&pl); err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	if pl.Kind != "" && pl.Kind != "PodList" {
		return fmt.Errorf("list pods: got a %s", pl.Kind)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.pods)
	for _, p := range pl.Items {
		if d.matches(p) {
			d.pods[p.Metadata.UID] = p
		}
	}
	d.rv = pl.Metadata.ResourceVersion
	d.err = ""
	return nil
}

// matches double-checks what the selectors asked the server for.
func (d *Discovery) matches(p *Pod) bool {
	if p.Metadata.UID == "" || p.Metadata.Namespace != d.opts.Project.Namespace || p.Spec.NodeName != d.opts.Node {
		return false
	}
	app := p.Metadata.Labels["app"]
	for _, a := range d.opts.Project.Apps {
		if a == app {
			return true
		}
	}
	return false
}

type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watch follows the changes from d.rv until the stream ends (nil) or
// fails.
func (d *Discovery) watch(ctx context.Context, set func([]tail.Spec)) error {
	d.mu.Lock()
	rv := d.rv
	d.mu.Unlock()
	q := url.Values{}
	q.Set("watch", "1")
	q.Set("allowWatchBookmarks", "true")
	q.Set("resourceVersion", rv)
	q.Set("timeoutSeconds", fmt.Sprint(int(d.opts.WatchTimeout/time.Second)))
	resp, err := d.request(ctx, d.query(q))
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	defer resp.Body.Close()
	d.opts.Backoff.Connected(time.Now())
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
	for {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil // the server's timeout: watch again from rv
			}
			return fmt.Errorf("watch pods: %w", err)
		}
		changed, err := d.apply(&ev)
		if err != nil {
			return err
		}
		if changed {
			d.publish(set)
		}
	}
}

// apply handles one watch event.
func (d *Discovery) apply(ev *watchEvent) (bool, error) {
	if ev.Type == "ERROR" {
		var st struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(ev.Object, &st)
		if st.Code == http.StatusGone {
			return false, errGone
		}
		return false, fmt.Errorf("watch pods: error event %d: %s", st.Code, st.Message)
	}
	var p Pod
	if err := json.Unmarshal(ev.Object, &p); err != nil {
		return false, fmt.Errorf("watch pods: %s event: %w", ev.Type, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Metadata.ResourceVersion != "" {
		d.rv = p.Metadata.ResourceVersion
	}
	switch ev.Type {
	case "BOOKMARK":
		return false, nil
	case "ADDED", "MODIFIED":
		if !d.matches(&p) {
			_, had := d.pods[p.Metadata.UID]
			delete(d.pods, p.Metadata.UID)
			return had, nil
		}
		d.pods[p.Metadata.UID] = &p
		return true, nil
	case "DELETED":
		_, had := d.pods[p.Metadata.UID]
		delete(d.pods, p.Metadata.UID)
		return had, nil
	}
	return false, nil
}

// publish computes the specs of the pods followed.
func (d *Discovery) publish(set func([]tail.Spec)) {
	d.mu.Lock()
	var specs []tail.Spec
	var errs []string
	for _, p := range d.pods {
		ss, e := d.specs(p)
		specs = append(specs, ss...)
		errs = append(errs, e...)
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		d.err = strings.Join(errs, "; ")
	}
	d.mu.Unlock()
	sort.Slice(specs, func(i, j int) bool { return specs[i].Key < specs[j].Key })
	set(specs)
}

// specs are a pod's container specs.
func (d *Discovery) specs(p *Pod) ([]tail.Spec, []string) {
	m := p.Metadata
	dir := d.opts.Project.Dir
	var out []tail.Spec
	var errs []string
	for _, c := range p.Spec.Containers {
		name := m.Namespace + "/" + m.Name + "/" + c.Name
		if dir == "" {
			base := path.Join(d.opts.PodsDir, m.Namespace+"_"+m.Name+"_"+m.UID, c.Name)
			out = append(out, tail.Spec{Key: "pod:" + m.UID + "/" + c.Name, Name: name, Format: tail.CRI,
				Patterns: []string{tail.GlobEscape(base) + "/*.log", tail.GlobEscape(base) + "/*.log.*"}})
			continue
		}
		var id string
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == c.Name {
				id = cs.ContainerID
			}
		}
		if id == "" {
			continue // not started yet
		}
		rt, cid, ok := strings.Cut(id, "://")
		if !ok || rt != "containerd" || cid == "" || strings.ContainsAny(cid, "/.") {
			errs = append(errs, fmt.Sprintf("%s: runtime of %q: only containerd root filesystems are read for dir", name, id))
			continue
		}
		root := path.Join(d.opts.ContainerdRoot, cid, "rootfs")
		out = append(out, tail.Spec{Key: "pod:" + m.UID + "/" + c.Name + ":" + cid, Name: name, StripPrefix: root,
			Format: tail.Plain, Patterns: []string{tail.GlobEscape(root) + dir}})
	}
	return out, errs
}
