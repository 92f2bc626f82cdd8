// Package project is the log-collection project as the server configures it
// on a node (the seed's /logging/config): what to collect (plain files,
// Docker containers or Kubernetes pods), which lines to drop, and how lines
// are batched. Decode parses and validates the JSON the server pushes (or
// the agent's local projects file); every error names the parameter.
//
// The JSON shape:
//
//	{
//	  "name": "web",                     project id (the seed's pid)
//	  "type": "logtail",                 logtail | docker | k8s
//	  "paths": ["/var/log/app/*.log"],   logtail: file globs
//	  "dir": "/app/logs/*.log",          docker, k8s: files inside the container
//	                                     (empty: the container's stdout/stderr);
//	                                     logtail: one more glob (the seed's form)
//	  "containers": ["nginx", "api-*"],  docker: container names (globs)
//	  "tags": ["1.25"],                  docker: image tags (optional)
//	  "namespace": "shop",               k8s
//	  "apps": ["web", "api"],            k8s: values of the pods' "app" label
//	  "api": "https://10.0.0.1:6443",    k8s API server
//	  "token": "…",                      k8s bearer token
//	  "ca": "-----BEGIN CERTIFICATE…",   k8s API CA (PEM; optional)
//	  "exclude": "DEBUG|healthz",        lines matching it are dropped (RE2)
//	  "batch": 1000,                     lines per batch
//	  "buffer": 4096,                    bytes per batch
//	  "interval": 30,                    seconds a line may wait in a batch
//	  "read_from": "end",                files found at the project's first scan:
//	                                     "end" (default) or "beginning"
//	  "multiline": {"start": "^\\d{4}-", "timeout": 5, "max_lines": 500},
//	  "max_line": 262144                 bytes kept of one line (longer: capped)
//	}
package project

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/agentfleet/libagent/logship"
)

// Defaults and bounds of the other parameters. The project types and the
// batching defaults and bounds are libagent/logship's, shared with the
// server that checks a project before pushing it.
const (
	DefaultMaxLine = 256 << 10
	MinMaxLine     = 1 << 10
	MaxMaxLine     = 16 << 20

	DefaultMultilineTimeout  = 5 // seconds
	DefaultMultilineMaxLines = 500
	MaxMultilineLines        = 100_000

	// MaxDecode bounds the JSON of one project.
	MaxDecode = 1 << 20
	maxList   = 64
	maxRegex  = 4096
	maxName   = 64
)

// Start positions for the files found at a project's first scan.
const (
	ReadFromEnd       = "end"
	ReadFromBeginning = "beginning"
)

// Project is one collection project on this node.
type Project struct {
	Name string `json:"name"`
	Type string `json:"type"`

	Paths      []string `json:"paths,omitempty"`
	Dir        string   `json:"dir,omitempty"`
	Containers []string `json:"containers,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Namespace  string   `json:"namespace,omitempty"`
	Apps       []string `json:"apps,omitempty"`
	API        string   `json:"api,omitempty"`
	Token      Secret   `json:"token,omitempty"`
	CA         string   `json:"ca,omitempty"`

	Exclude  string `json:"exclude,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	Buffer   int    `json:"buffer,omitempty"`
	Interval int    `json:"interval,omitempty"`

	ReadFrom  string     `json:"read_from,omitempty"`
	Multiline *Multiline `json:"multiline,omitempty"`
	MaxLine   int        `json:"max_line,omitempty"`
}

// Multiline joins the lines of one record (a stack trace): a line matching
// Start begins a record, other lines are appended to the current one. A
// record is complete when the next one starts, when it has MaxLines lines,
// or when no line came for Timeout seconds.
type Multiline struct {
	Start    string `json:"start"`
	Timeout  int    `json:"timeout,omitempty"`
	MaxLines int    `json:"max_lines,omitempty"`
}

// Secret is a string that never shows in logs or fmt output.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Error is a problem with one parameter.
type Error struct {
	Param string
	Msg   string
}

func (e *Error) Error() string { return e.Param + ": " + e.Msg }

// ErrInvalid wraps every validation error, for errors.Is.
var ErrInvalid = errors.New("invalid project")

func bad(param, format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalid, &Error{Param: param, Msg: fmt.Sprintf(format, args...)})
}

// Decode parses one project from JSON (at most MaxDecode bytes; unknown
// fields are errors), fills in the defaults and validates it.
func Decode(b []byte) (*Project, error) {
	if len(b) > MaxDecode {
		return nil, bad("project", "%d bytes, at most %d", len(b), MaxDecode)
	}
	var p Project
	if err := strictUnmarshal(b, &p); err != nil {
		return nil, err
	}
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodeList parses a JSON array of projects; names must be unique.
func DecodeList(b []byte) ([]*Project, error) {
	if len(b) > MaxDecode*4 {
		return nil, bad("projects", "%d bytes, at most %d", len(b), MaxDecode*4)
	}
	var raws []json.RawMessage
	if err := strictUnmarshal(b, &raws); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := make([]*Project, 0, len(raws))
	for i, r := range raws {
		p, err := Decode(r)
		if err != nil {
			return nil, fmt.Errorf("projects[%d]: %w", i, err)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("projects[%d]: %w", i, bad("name", "%q appears twice", p.Name))
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	return out, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return bad(te.Field, "want %s, got JSON %s", te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return bad(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown parameter")
		}
		return bad("project", "bad JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("project", "bad JSON: data after the value")
	}
	return nil
}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	labelRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
	dnsRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	tagRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// Normalize fills in the defaults and checks every parameter.
func (p *Project) Normalize() error {
	if p.Name == "" {
		return bad("name", "required")
	}
	if len(p.Name) > maxName || !nameRE.MatchString(p.Name) {
		return bad("name", "%q: want 1 to %d of A-Z a-z 0-9 . _ -, starting with a letter or digit", p.Name, maxName)
	}
	switch p.Type {
	case logship.TypeLogtail:
		if err := p.checkLogtail(); err != nil {
			return err
		}
	case logship.TypeDocker:
		if err := p.checkDocker(); err != nil {
			return err
		}
	case logship.TypeK8s:
		if err := p.checkK8s(); err != nil {
			return err
		}
	case "":
		return bad("type", "required: logtail, docker or k8s")
	default:
		return bad("type", "%q: want logtail, docker or k8s", p.Type)
	}
	return p.checkCommon()
}

func (p *Project) checkLogtail() error {
	if err := only(p, "logtail", "containers", len(p.Containers) > 0, "tags", len(p.Tags) > 0,
		"namespace", p.Namespace != "", "apps", len(p.Apps) > 0, "api", p.API != "", "token", p.Token != "", "ca", p.CA != ""); err != nil {
		return err
	}
	if p.Dir != "" {
		p.Paths = append(p.Paths, p.Dir)
		p.Dir = ""
	}
	if len(p.Paths) == 0 {
		return bad("paths", "required: at least one file glob")
	}
	if len(p.Paths) > maxList {
		return bad("paths", "%d globs, at most %d", len(p.Paths), maxList)
	}
	for i, g := range p.Paths {
		if err := checkGlob(g); err != nil {
			return bad(fmt.Sprintf("paths[%d]", i), "%v", err)
		}
	}
	return nil
}

func (p *Project) checkDocker() error {
	if err := only(p, "docker", "paths", len(p.Paths) > 0, "namespace", p.Namespace != "",
		"apps", len(p.Apps) > 0, "api", p.API != "", "token", p.Token != "", "ca", p.CA != ""); err != nil {
		return err
	}
	if len(p.Containers) == 0 {
		return bad("containers", "required: at least one container name")
	}
	if err := checkList("containers", p.Containers, func(s string) error {
		if _, err := path.Match(s, ""); err != nil || strings.ContainsAny(s, "/\\") {
			return errors.New("want a container name or a glob of names")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := checkList("tags", p.Tags, func(s string) error {
		if !tagRE.MatchString(s) {
			return errors.New("want an image tag")
		}
		return nil
	}); err != nil {
		return err
	}
	return p.checkDir()
}

func (p *Project) checkK8s() error {
	if err := only(p, "k8s", "paths", len(p.Paths) > 0, "containers", len(p.Containers) > 0, "tags", len(p.Tags) > 0); err != nil {
		return err
	}
	if p.Namespace == "" {
		return bad("namespace", "required")
	}
	if len(p.Namespace) > 63 || !dnsRE.MatchString(p.Namespace) {
		return bad("namespace", "%q is not a namespace name", p.Namespace)
	}
	if len(p.Apps) == 0 {
		return bad("apps", "required: at least one app name")
	}
	if err := checkList("apps", p.Apps, func(s string) error {
		if s == "" || len(s) > 63 || !labelRE.MatchString(s) {
			return errors.New("want a label value")
		}
		return nil
	}); err != nil {
		return err
	}
	if p.API == "" {
		return bad("api", "required: the Kubernetes API URL")
	}
	u, err := url.Parse(p.API)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return bad("api", "want an http(s)://host[:port][/path] URL")
	}
	if len(p.Token) > 16<<10 || strings.ContainsAny(string(p.Token), "\r\n") {
		return bad("token", "not a bearer token")
	}
	if p.CA != "" && !strings.Contains(p.CA, "-----BEGIN CERTIFICATE-----") {
		return bad("ca", "want PEM certificates")
	}
	return p.checkDir()
}

func (p *Project) checkDir() error {
	if p.Dir == "" {
		return nil
	}
	if err := checkGlob(p.Dir); err != nil {
		return bad("dir", "%v", err)
	}
	return nil
}

func (p *Project) checkCommon() error {
	if len(p.Exclude) > maxRegex {
		return bad("exclude", "%d bytes, at most %d", len(p.Exclude), maxRegex)
	}
	if _, err := regexp.Compile(p.Exclude); err != nil {
		return bad("exclude", "%v", err)
	}
	var err error
	if p.Batch, err = intParam("batch", p.Batch, logship.DefaultBatch, 1, logship.MaxBatch); err != nil {
		return err
	}
	if p.Buffer, err = intParam("buffer", p.Buffer, logship.DefaultBuffer, logship.MinBuffer, logship.MaxBuffer); err != nil {
		return err
	}
	if p.Interval, err = intParam("interval", p.Interval, logship.DefaultInterval, 1, logship.MaxInterval); err != nil {
		return err
	}
	if p.MaxLine, err = intParam("max_line", p.MaxLine, DefaultMaxLine, MinMaxLine, MaxMaxLine); err != nil {
		return err
	}
	switch p.ReadFrom {
	case "":
		p.ReadFrom = ReadFromEnd
	case ReadFromEnd, ReadFromBeginning:
	default:
		return bad("read_from", "%q: want end or beginning", p.ReadFrom)
	}
	if m := p.Multiline; m != nil {
		if m.Start == "" {
			return bad("multiline.start", "required: the regex of a record's first line")
		}
		if len(m.Start) > maxRegex {
			return bad("multiline.start", "%d bytes, at most %d", len(m.Start), maxRegex)
		}
		if _, err := regexp.Compile(m.Start); err != nil {
			return bad("multiline.start", "%v", err)
		}
		if m.Timeout, err = intParam("multiline.timeout", m.Timeout, DefaultMultilineTimeout, 1, logship.MaxInterval); err != nil {
			return err
		}
		if m.MaxLines, err = intParam("multiline.max_lines", m.MaxLines, DefaultMultilineMaxLines, 1, MaxMultilineLines); err != nil {
			return err
		}
	}
	return nil
}

// only refuses the parameters of other types: pairs of (name, set).
func only(p *Project, typ string, pairs ...any) error {
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1].(bool) {
			return bad(pairs[i].(string), "not a parameter of type %s", typ)
		}
	}
	return nil
}

func intParam(name string, v, def, lo, hi int) (int, error) {
	if v == 0 {
		return def, nil
	}
	if v < lo || v > hi {
		return 0, bad(name, "%d: want %d to %d", v, lo, hi)
	}
	return v, nil
}

func checkList(name string, items []string, check func(string) error) error {
	if len(items) > maxList {
		return bad(name, "%d items, at most %d", len(items), maxList)
	}
	seen := map[string]bool{}
	for i, s := range items {
		if err := check(s); err != nil {
			return bad(fmt.Sprintf("%s[%d]", name, i), "%q: %v", s, err)
		}
		if seen[s] {
			return bad(fmt.Sprintf("%s[%d]", name, i), "%q appears twice", s)
		}
		seen[s] = true
	}
	return nil
}

// checkGlob accepts an absolute slash-separated glob of path.Match syntax
// (Windows drive paths as C:/logs/*.log) without "." or ".." elements.
func checkGlob(g string) error {
	if g == "" {
		return errors.New("empty")
	}
	if len(g) > 4096 {
		return errors.New("longer than 4096 bytes")
	}
	if strings.ContainsRune(g, 0) || strings.ContainsAny(g, "\r\n") {
		return errors.New("control characters")
	}
	if strings.Contains(g, `\`) {
		return errors.New("use / as the separator")
	}
	abs := strings.HasPrefix(g, "/") || (len(g) > 2 && g[1] == ':' && g[2] == '/' && isLetter(g[0]))
	if !abs {
		return fmt.Errorf("%q is not absolute", g)
	}
	for _, el := range strings.Split(g, "/") {
		if el == "." || el == ".." {
			return fmt.Errorf("%q has a %q element", g, el)
		}
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("%q: %v", g, err)
	}
	return nil
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// ExcludeRE returns the compiled exclude regex, nil when there is none.
// Call it on a normalized project.
func (p *Project) ExcludeRE() *regexp.Regexp {
	if p.Exclude == "" {
		return nil
	}
	return regexp.MustCompile(p.Exclude)
}

// MultilineRE returns the compiled start-of-record regex, nil without
// multiline. Call it on a normalized project.
func (p *Project) MultilineRE() *regexp.Regexp {
	if p.Multiline == nil {
		return nil
	}
	return regexp.MustCompile(p.Multiline.Start)
}

// IntervalDuration is Interval as a duration.
func (p *Project) IntervalDuration() time.Duration { return time.Duration(p.Interval) * time.Second }
