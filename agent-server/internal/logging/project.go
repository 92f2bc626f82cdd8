package logging

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/agentfleet/libagent/logship"
)

// Bounds of the other parameters. The project types and the batching
// defaults and bounds are libagent/logship's, log-agent's own.
const (
	maxList  = 64
	maxRegex = 4096
	maxParam = 4096
	maxToken = 16 << 10
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Config is a project as /api/logging/config takes it: the seed's
// parameter names and meanings. It is stored as JSON.
type Config struct {
	PID      string   `json:"pid"`
	Type     string   `json:"type"`
	Exclude  string   `json:"exclude,omitempty"`
	Batch    int      `json:"batch"`
	Buffer   int      `json:"buffer"`
	Interval int      `json:"interval"`
	IDs      []string `json:"ids,omitempty"`  // logtail, docker (k8s: optional, default every log-agent)
	Dir      string   `json:"dir,omitempty"`  // logtail: required glob; docker, k8s: files inside (empty: stdout)
	NS       string   `json:"ns,omitempty"`   // k8s
	Name     []string `json:"name,omitempty"` // k8s: app names (csv)
	API      string   `json:"api,omitempty"`  // k8s
	Token    string   `json:"token,omitempty"`
	CtName   string   `json:"ct_name,omitempty"` // docker
	CtTag    string   `json:"ct_tag,omitempty"`
	// ReadFrom: where files present at the first scan start (ours):
	// "end" (default) or "beginning".
	ReadFrom string `json:"read_from,omitempty"`
}

// ParamError names the parameter that is wrong.
type ParamError struct {
	Param, Msg string
}

func (e *ParamError) Error() string { return "invalid parameter " + e.Param + ": " + e.Msg }

func bad(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// Params reads the seed's parameters from form values (query string or
// form body): csv lists, integers, and checks every one. get returns the
// value of a parameter ("" when absent).
func Params(get func(string) string) (*Config, error) {
	c := &Config{
		PID: get("pid"), Type: get("type"), Exclude: get("exclude"), Dir: get("dir"), NS: get("ns"),
		API: get("api"), Token: get("token"), CtName: get("ct_name"), CtTag: get("ct_tag"), ReadFrom: get("read_from"),
		IDs: csv(get("ids")), Name: csv(get("name")),
	}
	for _, p := range []struct {
		name string
		dst  *int
	}{{"batch", &c.Batch}, {"buffer", &c.Buffer}, {"interval", &c.Interval}} {
		v := get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, bad(p.name, "%q is not an integer", v)
		}
		*p.dst = n
	}
	return c, c.Check()
}

func csv(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// CheckName validates a project id.
func CheckName(pid string) error {
	if pid == "" {
		return &ParamError{Param: "pid", Msg: "required"}
	}
	if !nameRE.MatchString(pid) {
		return bad("pid", "%q: letters, digits, '.', '_', '-', at most 64, starting with a letter or digit", pid)
	}
	return nil
}

// Check fills the defaults and validates c.
func (c *Config) Check() error {
	if err := CheckName(c.PID); err != nil {
		return err
	}
	if c.Batch == 0 {
		c.Batch = logship.DefaultBatch
	}
	if c.Buffer == 0 {
		c.Buffer = logship.DefaultBuffer
	}
	if c.Interval == 0 {
		c.Interval = logship.DefaultInterval
	}
	switch {
	case c.Batch < 1 || c.Batch > logship.MaxBatch:
		return bad("batch", "%d: must be between 1 and %d", c.Batch, logship.MaxBatch)
	case c.Buffer < logship.MinBuffer || c.Buffer > logship.MaxBuffer:
		return bad("buffer", "%d: must be between %d and %d bytes", c.Buffer, logship.MinBuffer, logship.MaxBuffer)
	case c.Interval < 1 || c.Interval > logship.MaxInterval:
		return bad("interval", "%d: must be between 1 and %d seconds", c.Interval, logship.MaxInterval)
	}
	if c.Exclude != "" {
		if len(c.Exclude) > maxRegex {
			return bad("exclude", "longer than %d", maxRegex)
		}
		if _, err := regexp.Compile(c.Exclude); err != nil {
			return bad("exclude", "%v", err)
		}
	}
	switch c.ReadFrom {
	case "", "end", "beginning":
	default:
		return bad("read_from", "%q: must be end or beginning", c.ReadFrom)
	}
	if len(c.IDs) > 10000 {
		return bad("ids", "more than 10000")
	}
	for _, id := range c.IDs {
		if len(id) > 128 {
			return bad("ids", "%q: longer than 128", id)
		}
	}
	for _, v := range []struct{ name, val string }{{"dir", c.Dir}, {"ns", c.NS}, {"api", c.API}, {"ct_name", c.CtName}, {"ct_tag", c.CtTag}} {
		if len(v.val) > maxParam {
			return bad(v.name, "longer than %d", maxParam)
		}
	}
	if len(c.Token) > maxToken {
		return bad("token", "longer than %d", maxToken)
	}
	checkGlob := func(name, g string) error {
		if !strings.HasPrefix(g, "/") {
			return bad(name, "%q is not absolute", g)
		}
		if _, err := path.Match(g, ""); err != nil {
			return bad(name, "%q: %v", g, err)
		}
		return nil
	}
	switch c.Type {
	case logship.TypeLogtail:
		if len(c.IDs) == 0 {
			return &ParamError{Param: "ids", Msg: "required for type logtail"}
		}
		if c.Dir == "" {
			return &ParamError{Param: "dir", Msg: "required for type logtail"}
		}
		if err := checkGlob("dir", c.Dir); err != nil {
			return err
		}
	case logship.TypeDocker:
		if len(c.IDs) == 0 {
			return &ParamError{Param: "ids", Msg: "required for type docker"}
		}
		if c.CtName == "" {
			return &ParamError{Param: "ct_name", Msg: "required for type docker"}
		}
		if _, err := path.Match(c.CtName, ""); err != nil {
			return bad("ct_name", "%q: %v", c.CtName, err)
		}
		if c.Dir != "" {
			if err := checkGlob("dir", c.Dir); err != nil {
				return err
			}
		}
	case logship.TypeK8s:
		if c.NS == "" {
			return &ParamError{Param: "ns", Msg: "required for type k8s"}
		}
		if len(c.Name) == 0 {
			return &ParamError{Param: "name", Msg: "required for type k8s"}
		}
		if len(c.Name) > maxList {
			return bad("name", "more than %d", maxList)
		}
		if c.API == "" {
			return &ParamError{Param: "api", Msg: "required for type k8s"}
		}
		u, err := url.Parse(c.API)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return bad("api", "%q is not an http(s) URL", c.API)
		}
		if c.Dir != "" {
			if err := checkGlob("dir", c.Dir); err != nil {
				return err
			}
		}
	case "":
		return &ParamError{Param: "type", Msg: "required"}
	default:
		return bad("type", "%q: must be one of logtail, docker, k8s", c.Type)
	}
	return nil
}

// AgentSpec returns the project as log-agent takes it (its project JSON).
func (c *Config) AgentSpec() json.RawMessage {
	m := map[string]any{"name": c.PID, "type": c.Type, "batch": c.Batch, "buffer": c.Buffer, "interval": c.Interval}
	if c.Exclude != "" {
		m["exclude"] = c.Exclude
	}
	if c.ReadFrom != "" {
		m["read_from"] = c.ReadFrom
	}
	switch c.Type {
	case logship.TypeLogtail:
		m["paths"] = []string{c.Dir}
	case logship.TypeDocker:
		m["containers"] = []string{c.CtName}
		if c.CtTag != "" {
			m["tags"] = []string{c.CtTag}
		}
		if c.Dir != "" {
			m["dir"] = c.Dir
		}
	case logship.TypeK8s:
		m["namespace"], m["apps"], m["api"] = c.NS, c.Name, c.API
		if c.Token != "" {
			m["token"] = c.Token
		}
		if c.Dir != "" {
			m["dir"] = c.Dir
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// Targets reports whether the project runs on agent id of type agentType.
func (c *Config) Targets(id, agentType string) bool {
	if agentType != AgentType {
		return false
	}
	if len(c.IDs) == 0 {
		return c.Type == logship.TypeK8s
	}
	for _, x := range c.IDs {
		if x == id {
			return true
		}
	}
	return false
}

// AgentType is the come.name of log-agents.
const AgentType = "log-agent"
