// Package docker finds the containers of a docker project through the
// Docker Engine API on its unix socket and keeps the tailer's specs in step
// with them: a container whose name matches one of the project's
// containers (globs) and whose image tag is one of its tags (any, when it
// has none) is followed while it runs.
//
// What is read of a container:
//
//   - without dir: its stdout and stderr from the json-file log driver's
//     files (the inspect's LogPath and the driver's rotations LogPath.1 …);
//     other log drivers cannot be read from files and are reported as an
//     error in the status;
//   - with dir: the files matching dir inside the container, through its
//     merged root filesystem (the inspect's GraphDriver.Data.MergedDir,
//     overlay2) or else /proc/<pid>/root.
//
// The API calls: GET /version (to pick the API version: the daemon's, at
// most 1.43), GET /containers/json (running containers), GET
// /containers/<id>/json (inspect) and GET /events filtered on containers,
// read as a stream. The event stream is opened before the list, so no
// start or stop falls between them. start and restart add (or refresh) a
// container, die, stop and destroy release it: its files are read to their
// end and closed; a container started again continues where it stopped
// (same files, same checkpoints). A lost connection is retried with
// backoff and the list taken again.
package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/jkframe/backoff"

	"github.com/agentfleet/log-agent/internal/project"
	"github.com/agentfleet/log-agent/internal/tail"
)

// MaxAPIVersion is the newest Engine API version the client asks for.
const MaxAPIVersion = "1.43"

// Options configure a Discovery.
type Options struct {
	Project *project.Project
	// Socket is the Docker daemon's unix socket.
	Socket string
	// HostRoot is where the host's / is seen (paths from the daemon are
	// host paths); "" is /.
	HostRoot string
	Log      *slog.Logger
	Backoff  *backoff.Backoff
	// Timeout bounds each request but the event stream (default 10 s).
	Timeout time.Duration
}

// Discovery follows a docker project's containers.
type Discovery struct {
	opts Options
	hc   *http.Client
	ver  string

	mu   sync.Mutex
	ctrs map[string]*container // running and matching, by id
	err  string
}

type container struct {
	id, name, image, tag string
	spec                 *tail.Spec
	err                  string
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
		opts.Timeout = 10 * time.Second
	}
	sock := opts.Socket
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second,
		ResponseHeaderTimeout: opts.Timeout,
	}
	return &Discovery{opts: opts, hc: &http.Client{Transport: tr}, ctrs: map[string]*container{}}
}

// Info is the per-node task_info entry: the containers followed.
func (d *Discovery) Info() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.ctrs))
	var errs []string
	for _, c := range d.ctrs {
		names = append(names, c.name)
		if c.err != "" {
			errs = append(errs, c.name+": "+c.err)
		}
	}
	sort.Strings(names)
	sort.Strings(errs)
	m := map[string]any{"name": strings.Join(d.opts.Project.Containers, ","), "dir": d.opts.Project.Dir,
		"containers": len(names), "names": names}
	if len(d.opts.Project.Tags) > 0 {
		m["tag"] = strings.Join(d.opts.Project.Tags, ",")
	}
	if d.err != "" {
		errs = append(errs, d.err)
	}
	if len(errs) > 0 {
		m["errors"] = errs
	}
	return []map[string]any{m}
}

// Run keeps set up to date until ctx is done.
func (d *Discovery) Run(ctx context.Context, set func([]tail.Spec)) error {
	bo := d.opts.Backoff
	for {
		err := d.session(ctx, set)
		if ctx.Err() != nil {
			return nil
		}
		d.mu.Lock()
		d.err = err.Error()
		d.mu.Unlock()
		d.opts.Log.Warn("docker: lost the daemon; retrying", "project", d.opts.Project.Name, "err", err)
		bo.Disconnected(time.Now())
		if backoff.Sleep(ctx, nil, bo.Next()) != nil {
			return nil
		}
	}
}

// session is one connection: the event stream, the list, then the events
// until the stream ends.
func (d *Discovery) session(ctx context.Context, set func([]tail.Spec)) error {
	if err := d.negotiate(ctx); err != nil {
		return err
	}
	filters := url.QueryEscape(`{"type":["container"]}`)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, d.url("/events?filters="+filters), nil)
	if err != nil {
		return err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("events: %s", apiError(resp))
	}
	var list []struct {
		ID    string   `json:"Id"`
		Names []string `json:"Names"`
		Image string   `json:"Image"`
		State string   `json:"State"`
	}
	if err := d.get(ctx, "/containers/json", &list); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	d.mu.Lock()
	clear(d.ctrs)
	d.err = ""
	d.mu.Unlock()
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		if d.matches(name, c.Image) {
			d.add(ctx, c.ID)
		}
	}
	d.publish(set)
	d.opts.Backoff.Connected(time.Now())
	dec := json.NewDecoder(bufio.NewReaderSize(io.LimitReader(resp.Body, 1<<40), 64<<10))
	for {
		var ev event
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("event stream ended")
			}
			return fmt.Errorf("events: %w", err)
		}
		if d.handle(ctx, &ev) {
			d.publish(set)
		}
	}
}

// event is one /events message (the fields used).
type event struct {
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Actor  struct {
		ID         string            `json:"ID"`
		Attributes map[string]string `json:"Attributes"`
	} `json:"Actor"`
}

// handle applies an event and reports whether the specs changed.
func (d *Discovery) handle(ctx context.Context, ev *event) bool {
	if ev.Type != "container" || ev.Actor.ID == "" {
		return false
	}
	id := ev.Actor.ID
	switch ev.Action {
	case "start", "restart", "unpause", "rename":
		name, image := ev.Actor.Attributes["name"], ev.Actor.Attributes["image"]
		if !d.matches(name, image) {
			return d.remove(id)
		}
		d.add(ctx, id)
		return true
	case "die", "stop", "destroy", "kill", "oom":
		if ev.Action == "kill" || ev.Action == "oom" {
			return false // die follows
		}
		return d.remove(id)
	}
	return false
}

func (d *Discovery) remove(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ctrs[id]; !ok {
		return false
	}
	delete(d.ctrs, id)
	return true
}

// matches reports whether a container (name without "/", image
// reference) belongs to the project.
func (d *Discovery) matches(name, image string) bool {
	p := d.opts.Project
	ok := false
	for _, pat := range p.Containers {
		if m, _ := path.Match(pat, name); m {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	if len(p.Tags) == 0 {
		return true
	}
	tag := ImageTag(image)
	for _, t := range p.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// ImageTag returns the tag of an image reference ("latest" when it has
// none, "" for a digest or an image id).
func ImageTag(ref string) string {
	if strings.Contains(ref, "@") || strings.HasPrefix(ref, "sha256:") {
		return ""
	}
	slash := strings.LastIndexByte(ref, '/')
	if i := strings.LastIndexByte(ref, ':'); i > slash {
		return ref[i+1:]
	}
	return "latest"
}

// inspect is the part of GET /containers/<id>/json used.
type inspect struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	State struct {
		Running bool `json:"Running"`
		Pid     int  `json:"Pid"`
	} `json:"State"`
	LogPath     string `json:"LogPath"`
	GraphDriver struct {
		Name string            `json:"Name"`
		Data map[string]string `json:"Data"`
	} `json:"GraphDriver"`
	HostConfig struct {
		LogConfig struct {
			Type string `json:"Type"`
		} `json:"LogConfig"`
	} `json:"HostConfig"`
	Config struct {
		Image string `json:"Image"`
	} `json:"Config"`
}

// add inspects a container and records its spec (or why it has none).
func (d *Discovery) add(ctx context.Context, id string) {
	var in inspect
	if err := d.get(ctx, "/containers/"+url.PathEscape(id)+"/json", &in); err != nil {
		d.opts.Log.Warn("docker: inspect failed", "id", id, "err", err)
		return
	}
	c := &container{id: in.ID, name: strings.TrimPrefix(in.Name, "/"), image: in.Config.Image, tag: ImageTag(in.Config.Image)}
	if !in.State.Running {
		return
	}
	c.spec, c.err = d.spec(&in, c.name)
	if c.err != "" {
		d.opts.Log.Warn("docker: container not readable", "container", c.name, "err", c.err)
	}
	d.mu.Lock()
	d.ctrs[c.id] = c
	d.mu.Unlock()
}

func (d *Discovery) spec(in *inspect, name string) (*tail.Spec, string) {
	p := d.opts.Project
	if p.Dir == "" {
		if t := in.HostConfig.LogConfig.Type; t != "json-file" {
			return nil, fmt.Sprintf("log driver %q: only json-file logs can be read from files", t)
		}
		if !strings.HasPrefix(in.LogPath, "/") {
			return nil, "no LogPath in the inspect"
		}
		return &tail.Spec{Key: "ctr:" + in.ID, Name: name, Format: tail.DockerJSON,
			Patterns: []string{tail.GlobEscape(in.LogPath), tail.GlobEscape(in.LogPath) + ".*"}}, ""
	}
	root := in.GraphDriver.Data["MergedDir"]
	if root == "" || !strings.HasPrefix(root, "/") {
		if in.State.Pid <= 0 {
			return nil, "no root filesystem (no MergedDir, no pid)"
		}
		root = "/proc/" + strconv.Itoa(in.State.Pid) + "/root"
	}
	return &tail.Spec{Key: "ctr:" + in.ID + ":" + p.Dir, Name: name, StripPrefix: root, Format: tail.Plain,
		Patterns: []string{tail.GlobEscape(root) + p.Dir}}, ""
}

func (d *Discovery) publish(set func([]tail.Spec)) {
	d.mu.Lock()
	specs := make([]tail.Spec, 0, len(d.ctrs))
	for _, c := range d.ctrs {
		if c.spec != nil {
			specs = append(specs, *c.spec)
		}
	}
	d.mu.Unlock()
	sort.Slice(specs, func(i, j int) bool { return specs[i].Key < specs[j].Key })
	set(specs)
}

func (d *Discovery) url(p string) string { return "http://docker/v" + d.ver + p }

// negotiate picks the API version: the daemon's, at most MaxAPIVersion.
func (d *Discovery) negotiate(ctx context.Context) error {
	var v struct {
		APIVersion string `json:"ApiVersion"`
	}
	d.ver = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/version", nil)
	if err != nil {
		return err
	}
	if err := d.do(ctx, req, &v); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	d.ver = MaxAPIVersion
	if v.APIVersion != "" && versionLess(v.APIVersion, MaxAPIVersion) {
		d.ver = v.APIVersion
	}
	return nil
}

// versionLess compares "1.41" and "1.43" style versions.
func versionLess(a, b string) bool {
	pa, pb := strings.SplitN(a, ".", 2), strings.SplitN(b, ".", 2)
	if len(pa) != 2 || len(pb) != 2 {
		return false
	}
	a0, _ := strconv.Atoi(pa[0])
	a1, _ := strconv.Atoi(pa[1])
	b0, _ := strconv.Atoi(pb[0])
	b1, _ := strconv.Atoi(pb[1])
	return a0 < b0 || a0 == b0 && a1 < b1
}

func (d *Discovery) get(ctx context.Context, p string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url(p), nil)
	if err != nil {
		return err
	}
	return d.do(ctx, req, v)
}

// do sends a request with the timeout and decodes a JSON answer of at
// most 16 MiB.
func (d *Discovery) do(ctx context.Context, req *http.Request, v any) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	resp, err := d.hc.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(apiError(resp))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// apiError is the daemon's {"message": …} or the status.
func apiError(resp *http.Response) string {
	var e struct {
		Message string `json:"message"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return fmt.Sprintf("%s: %s", resp.Status, e.Message)
	}
	return resp.Status
}
