package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/logging"
)

// Limits of the logging routes.
const (
	maxLogQueryLimit = 10000
	maxLogGrep       = 1024
	maxLogHosts      = 100
	logTailHeartbeat = 15 * time.Second
)

// LogLine is one line of /api/logging/query and of the tail's events.
type LogLine struct {
	Host     string    `json:"host"`
	Source   string    `json:"source"`
	SourceID string    `json:"source_id"`
	Offset   int64     `json:"offset"`
	Time     time.Time `json:"time"`
	Stream   string    `json:"stream"`
	Flags    []string  `json:"flags,omitempty"`
	// Line is the text; a line that is not UTF-8 has it with U+FFFD
	// replacements and its exact bytes in LineB64.
	Line    string `json:"line"`
	LineB64 []byte `json:"line_b64,omitempty"`
}

// LogPage is the payload of /api/logging/query.
type LogPage struct {
	Lines []LogLine `json:"lines"`
	// Next continues the query (cursor=…); empty at the end.
	Next string `json:"next"`
}

// LogProjects is the payload of /api/logging/projects.
type LogProjects struct {
	Projects []*logging.TaskInfo `json:"projects"`
}

func logLine(l *logging.Line) LogLine {
	out := LogLine{Host: l.Host, Source: l.Source, SourceID: l.SourceID, Offset: l.Offset, Time: l.Time, Stream: "file"}
	switch l.Stream {
	case 1:
		out.Stream = "stdout"
	case 2:
		out.Stream = "stderr"
	}
	for i, name := range []string{"truncated", "partial", "multiline"} {
		if l.Flags&(1<<i) != 0 {
			out.Flags = append(out.Flags, name)
		}
	}
	out.Line = string(l.Data)
	if !utf8.Valid(l.Data) {
		out.Line = string([]rune(out.Line)) // replaces invalid bytes with U+FFFD
		out.LineB64 = l.Data
	}
	return out
}

// logParams returns the parameter getter of a logging route: the query
// string and form, or the keys of a JSON object body (strings, numbers,
// booleans, or arrays of strings joined with commas as the seed's csv).
func logParams(r *http.Request) (func(string) string, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method != http.MethodGet && ct == "application/json" {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, &japi.Error{Code: http.StatusRequestEntityTooLarge, Msg: "request body too large"}
			}
			return nil, japi.Errorf(http.StatusBadRequest, "read body: %v", err)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, japi.Errorf(http.StatusBadRequest, "invalid JSON body: %v", err)
		}
		vals := map[string]string{}
		for k, raw := range obj {
			var s string
			var n json.Number
			var b bool
			var list []string
			switch {
			case json.Unmarshal(raw, &s) == nil:
				vals[k] = s
			case json.Unmarshal(raw, &n) == nil:
				vals[k] = n.String()
			case json.Unmarshal(raw, &b) == nil:
				vals[k] = strconv.FormatBool(b)
			case json.Unmarshal(raw, &list) == nil:
				for i, v := range list {
					if i > 0 {
						vals[k] += ","
					}
					vals[k] += v
				}
			case string(raw) == "null":
			default:
				return nil, japi.BadParam(k, "must be a string, a number or an array of strings")
			}
		}
		q := r.URL.Query()
		return func(k string) string {
			if v, ok := vals[k]; ok {
				return v
			}
			return q.Get(k)
		}, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, japi.Errorf(http.StatusBadRequest, "invalid query or form: %v", err)
	}
	return r.Form.Get, nil
}

// loggingErr maps the log-collection service's errors (see mapError).
func loggingErr(err error) error { return mapError(err) }

// pidParam reads the project name (pid) of a request: query, form or JSON
// body (logParams).
func pidParam(r *http.Request) (string, error) {
	get, err := logParams(r)
	if err != nil {
		return "", err
	}
	pid := get("pid")
	if err := logging.CheckName(pid); err != nil {
		return "", loggingErr(err)
	}
	return pid, nil
}

// RoutesLogging registers the log-collection routes.
func (s *Server) RoutesLogging(svc *logging.Service) {
	s.Handle("POST /api/logging/config", func(w http.ResponseWriter, r *http.Request) error {
		get, err := logParams(r)
		if err != nil {
			return err
		}
		c, err := logging.Params(get)
		if err != nil {
			return loggingErr(err)
		}
		if _, err := svc.Configure(r.Context(), c); err != nil {
			return loggingErr(err)
		}
		japi.OK(w, r, nil)
		return nil
	}, Scope(authz.LoggingWrite))

	simple := func(op func(r *http.Request, pid string) error) HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			pid, err := pidParam(r)
			if err != nil {
				return err
			}
			if err := op(r, pid); err != nil {
				return loggingErr(err)
			}
			japi.OK(w, r, nil)
			return nil
		}
	}
	s.Handle("POST /api/logging/remove", simple(func(r *http.Request, pid string) error {
		return svc.Remove(r.Context(), pid)
	}), Scope(authz.LoggingWrite))
	s.Handle("POST /api/logging/start", simple(func(r *http.Request, pid string) error {
		return svc.SetRunning(r.Context(), pid, true)
	}), Scope(authz.LoggingWrite))
	s.Handle("POST /api/logging/stop", simple(func(r *http.Request, pid string) error {
		return svc.SetRunning(r.Context(), pid, false)
	}), Scope(authz.LoggingWrite))

	s.Handle("GET /api/logging/task_info", func(w http.ResponseWriter, r *http.Request) error {
		pid, err := pidParam(r)
		if err != nil {
			return err
		}
		ti, err := svc.TaskInfo(r.Context(), pid)
		if err != nil {
			return loggingErr(err)
		}
		japi.OK(w, r, ti)
		return nil
	}, Scope(authz.LoggingRead))

	s.Handle("GET /api/logging/projects", func(w http.ResponseWriter, r *http.Request) error {
		list, err := svc.List(r.Context())
		if err != nil {
			return err
		}
		japi.OK(w, r, LogProjects{Projects: list})
		return nil
	}, Scope(authz.LoggingRead))

	s.Handle("GET /api/logging/query", func(w http.ResponseWriter, r *http.Request) error {
		q, err := logQuery(r)
		if err != nil {
			return err
		}
		if !svc.Exists(q.Project) {
			return japi.NotFound("project")
		}
		lines, next, err := svc.Query(r.Context(), *q)
		if err != nil {
			return err
		}
		page := LogPage{Lines: make([]LogLine, len(lines))}
		for i := range lines {
			page.Lines[i] = logLine(&lines[i])
		}
		if next != nil {
			page.Next = next.Encode()
		}
		japi.OK(w, r, page)
		return nil
	}, Scope(authz.LoggingRead), Audit())

	s.Handle("GET /api/logging/tail", func(w http.ResponseWriter, r *http.Request) error {
		q, err := logQuery(r)
		if err != nil {
			return err
		}
		if !svc.Exists(q.Project) {
			return japi.NotFound("project")
		}
		sub := svc.Subscribe(logging.TailFilter{Project: q.Project, Hosts: q.Hosts, Source: q.Source, Grep: q.Grep})
		defer sub.Close()
		es := newEventStream(w)
		_, _ = fmt.Fprint(w, ": tail of "+q.Project+"\n\n")
		_ = es.flush()
		// Until the client goes or the server shuts down (sub.Lines closes).
		pump(r.Context(), es, logTailHeartbeat, sub.Lines, func(l logging.Line) bool {
			b, _ := json.Marshal(logLine(&l))
			if err := es.event("event: line\ndata: %s", b); err != nil {
				return false
			}
			if len(sub.Lines) == 0 {
				if n := sub.Dropped(); n > 0 {
					_ = es.event("event: dropped\ndata: {\"lines\":%d,\"msg\":\"client too slow: lines skipped (they are stored; /api/logging/query reads them)\"}", n)
				}
				if es.flush() != nil {
					return false
				}
			}
			return true
		}, nil)
		return nil
	}, Scope(authz.LoggingRead), Audit())
}

// logQuery reads the parameters shared by query and tail.
func logQuery(r *http.Request) (*logging.Query, error) {
	p := japi.Params(r)
	pid := p.Required("pid")
	limit := p.Int("limit", 1000, 1, maxLogQueryLimit)
	hosts := p.Strings("host")
	source := p.String("source", "")
	grep := p.String("grep", "")
	cursor := p.String("cursor", "")
	since, until := p.String("since", ""), p.String("until", "")
	if err := p.Err(); err != nil {
		return nil, err
	}
	if err := logging.CheckName(pid); err != nil {
		return nil, loggingErr(err)
	}
	q := &logging.Query{Project: pid, Hosts: hosts, Source: source, Limit: limit}
	if len(hosts) > maxLogHosts {
		return nil, japi.BadParam("host", fmt.Sprintf("at most %d hosts", maxLogHosts))
	}
	var err error
	if q.Since, err = parseTime("since", since); err != nil {
		return nil, err
	}
	if q.Until, err = parseTime("until", until); err != nil {
		return nil, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return nil, japi.BadParam("until", "must be after since")
	}
	if grep != "" {
		if len(grep) > maxLogGrep {
			return nil, japi.BadParam("grep", fmt.Sprintf("longer than %d", maxLogGrep))
		}
		if q.Grep, err = regexp.Compile(grep); err != nil {
			return nil, japi.BadParam("grep", err.Error())
		}
	}
	if len(source) > 4096 {
		return nil, japi.BadParam("source", "longer than 4096")
	}
	if cursor != "" {
		if q.After, err = logging.ParseCursor(cursor); err != nil {
			return nil, japi.BadParam("cursor", err.Error())
		}
	}
	return q, nil
}
