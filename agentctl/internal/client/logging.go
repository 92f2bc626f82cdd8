package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LogConfig is a log-collection project as POST /api/logging/config takes
// it: the seed's parameter names. Token (k8s) is sent, never shown: the
// server leaves it out of every reply.
type LogConfig struct {
	PID      string `json:"pid" yaml:"pid"`
	Type     string `json:"type" yaml:"type"`
	Exclude  string `json:"exclude,omitempty" yaml:"exclude"`
	Batch    int    `json:"batch,omitempty" yaml:"batch"`
	Buffer   int    `json:"buffer,omitempty" yaml:"buffer"`
	Interval int    `json:"interval,omitempty" yaml:"interval"`
	IDs      List   `json:"ids,omitempty" yaml:"ids"`
	Dir      string `json:"dir,omitempty" yaml:"dir"`
	NS       string `json:"ns,omitempty" yaml:"ns"`
	Name     List   `json:"name,omitempty" yaml:"name"`
	API      string `json:"api,omitempty" yaml:"api"`
	Token    string `json:"token,omitempty" yaml:"token"`
	CtName   string `json:"ct_name,omitempty" yaml:"ct_name"`
	CtTag    string `json:"ct_tag,omitempty" yaml:"ct_tag"`
	ReadFrom string `json:"read_from,omitempty" yaml:"read_from"`
}

// List is a list of strings that a file may also write as one
// comma-separated string (the seed's csv parameters).
type List []string

// UnmarshalYAML takes a sequence of strings or a csv string.
func (l *List) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = nil
		for _, v := range strings.Split(n.Value, ",") {
			if v = strings.TrimSpace(v); v != "" {
				*l = append(*l, v)
			}
		}
		return nil
	case yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = s
		return nil
	}
	return fmt.Errorf("line %d: want a list of strings or a comma-separated string", n.Line)
}

// ParseLogConfig reads a project from YAML or JSON (JSON is YAML): the
// seed's parameter names; an unknown key is an error naming its line.
func ParseLogConfig(b []byte) (LogConfig, error) {
	var c LogConfig
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	var extra any
	if err := dec.Decode(&extra); err == nil {
		return c, fmt.Errorf("more than one document: one project per file")
	}
	if c.PID == "" {
		return c, fmt.Errorf("no pid: the project's name is required")
	}
	return c, nil
}

// LogNode is one node of a project.
type LogNode struct {
	ID string `json:"id"`
	// Status: "running" or "stoped" (the seed's spelling).
	Status string           `json:"status"`
	Info   []map[string]any `json:"info"`
	// Pending: the node has not reported since the project's last change;
	// Status is the state asked for, not yet confirmed.
	Pending bool           `json:"pending"`
	Online  bool           `json:"online"`
	Error   string         `json:"error"`
	Updated Time           `json:"updated"`
	Stats   map[string]any `json:"stats"`
}

// Stat returns a counter of the node's status (0 when absent).
func (n LogNode) Stat(k string) int64 {
	switch v := n.Stats[k].(type) {
	case float64:
		return int64(v)
	case json.Number:
		i, _ := v.Int64()
		return i
	}
	return 0
}

// LogProject is GET /api/logging/task_info: a project and its nodes.
type LogProject struct {
	PID      string    `json:"pid"`
	Type     string    `json:"type"`
	Running  bool      `json:"running"`
	Exclude  string    `json:"exclude"`
	Batch    int       `json:"batch"`
	Buffer   int       `json:"buffer"`
	Interval int       `json:"interval"`
	Created  Time      `json:"created"`
	Version  int64     `json:"version"`
	Config   LogConfig `json:"config"`
	Nodes    []LogNode `json:"nodes"`
}

// LogProjects lists every project (GET /api/logging/projects).
func (c *Client) LogProjects(ctx context.Context) ([]LogProject, error) {
	var v struct {
		Projects []LogProject `json:"projects"`
	}
	_, err := c.Call(ctx, http.MethodGet, "/api/logging/projects", nil, nil, &v)
	return v.Projects, err
}

// LogProject returns one project (GET /api/logging/task_info).
func (c *Client) LogProject(ctx context.Context, pid string) (LogProject, error) {
	var v LogProject
	_, err := c.Call(ctx, http.MethodGet, "/api/logging/task_info", url.Values{"pid": {pid}}, nil, &v)
	return v, err
}

// ConfigureLog creates or replaces a project (POST /api/logging/config).
func (c *Client) ConfigureLog(ctx context.Context, cfg LogConfig) error {
	_, err := c.Call(ctx, http.MethodPost, "/api/logging/config", nil, cfg, nil)
	return err
}

// LogAction runs POST /api/logging/{action} on a project: remove, start
// or stop.
func (c *Client) LogAction(ctx context.Context, action, pid string) error {
	_, err := c.Call(ctx, http.MethodPost, "/api/logging/"+action, nil, map[string]string{"pid": pid}, nil)
	return err
}

// LogLine is one stored line.
type LogLine struct {
	Host     string   `json:"host"`
	Source   string   `json:"source"`
	SourceID string   `json:"source_id"`
	Offset   int64    `json:"offset"`
	Time     Time     `json:"time"`
	Stream   string   `json:"stream"`
	Flags    []string `json:"flags"`
	Line     string   `json:"line"`
	// LineB64: the exact bytes of a line that is not UTF-8 (Line then has
	// U+FFFD in their place).
	LineB64 []byte `json:"line_b64,omitempty"`
}

// Bytes returns the line's exact bytes.
func (l LogLine) Bytes() []byte {
	if l.LineB64 != nil {
		return l.LineB64
	}
	return []byte(l.Line)
}

// LogFilter selects stored lines (the query and tail parameters).
type LogFilter struct {
	PID          string
	Since, Until string // RFC 3339 or unix seconds, as the server reads them
	Hosts        []string
	Source       string
	Grep         string
}

func (f LogFilter) values() url.Values {
	q := url.Values{"pid": {f.PID}}
	for k, v := range map[string]string{"since": f.Since, "until": f.Until, "source": f.Source, "grep": f.Grep} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, h := range f.Hosts {
		q.Add("host", h)
	}
	return q
}

// LogPage is one page of GET /api/logging/query.
type LogPage struct {
	Lines []LogLine `json:"lines"`
	Next  string    `json:"next"`
}

// MaxLogPage is the server's largest page.
const MaxLogPage = 10000

// LogQuery reads one page of stored lines: limit at most MaxLogPage;
// cursor is the previous page's Next.
func (c *Client) LogQuery(ctx context.Context, f LogFilter, limit int, cursor string) (LogPage, error) {
	q := f.values()
	q.Set("limit", strconv.Itoa(limit))
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var p LogPage
	_, err := c.Call(ctx, http.MethodGet, "/api/logging/query", q, nil, &p)
	return p, err
}

// LogEvent is one event of the live tail: a line, or Dropped lines the
// server skipped because this client did not keep up.
type LogEvent struct {
	Line    *LogLine
	Dropped int64
}

// maxLogEvent bounds one tail event: a 16 MiB line, base64 and escaped.
const maxLogEvent = 48 << 20

// LogTail opens the live tail (GET /api/logging/tail; Since and Until are
// not used). When it returns, the server has subscribed: every line stored
// from then on that matches arrives. The sequence ends with the stream (a
// nil error when the server closed it) or with an error.
func (c *Client) LogTail(ctx context.Context, f LogFilter) (iter.Seq2[LogEvent, error], error) {
	f.Since, f.Until = "", ""
	events, err := c.stream(ctx, "/api/logging/tail", f.values(), maxLogEvent)
	if err != nil {
		return nil, err
	}
	return func(yield func(LogEvent, error) bool) {
		for ev, err := range events {
			if err != nil {
				yield(LogEvent{}, err)
				return
			}
			var e LogEvent
			switch ev.Type {
			case "line":
				var l LogLine
				if err := json.Unmarshal([]byte(ev.Data), &l); err != nil {
					err = fmt.Errorf("tail event: bad data: %w", err)
					if !yield(LogEvent{}, err) {
						return
					}
					continue
				}
				e.Line = &l
			case "dropped":
				var d struct {
					Lines int64 `json:"lines"`
				}
				_ = json.Unmarshal([]byte(ev.Data), &d)
				e.Dropped = d.Lines
			default:
				continue
			}
			if !yield(e, nil) {
				return
			}
		}
	}, nil
}
