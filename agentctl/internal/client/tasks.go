package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Selector chooses the agents of a fleet task: IDs, or filters.
type Selector struct {
	IDs      []string `json:"ids,omitempty"`
	Type     string   `json:"type,omitempty"`
	OS       string   `json:"os,omitempty"`
	Platform string   `json:"platform,omitempty"`
	Keyword  string   `json:"keyword,omitempty"`
	Labels   string   `json:"labels,omitempty"`
}

// TaskRequest is the body of POST /api/tasks. Concurrency and MaxErrors
// are N or "N%"; durations are seconds or Go duration strings.
type TaskRequest struct {
	Selector    Selector `json:"selector"`
	Cmd         string   `json:"cmd,omitempty"`
	Args        []string `json:"args,omitempty"`
	Script      string   `json:"script,omitempty"`
	Type        string   `json:"type,omitempty"`
	Auth        string   `json:"auth,omitempty"`
	User        string   `json:"user,omitempty"`
	WorkDir     string   `json:"workdir,omitempty"`
	Env         []string `json:"env,omitempty"`
	Concurrency string   `json:"concurrency,omitempty"`
	MaxErrors   string   `json:"max_errors,omitempty"`
	Canary      int      `json:"canary,omitempty"`
	BatchWait   string   `json:"batch_wait,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	WaitOffline string   `json:"wait_offline,omitempty"`
}

// TaskCreated is the reply of POST /api/tasks.
type TaskCreated struct {
	ID     string `json:"id"`
	Agents int    `json:"agents"`
	Lost   int    `json:"lost"`
}

// CreateTask submits a fleet task.
func (c *Client) CreateTask(ctx context.Context, r TaskRequest) (TaskCreated, error) {
	var v TaskCreated
	_, err := c.Call(ctx, http.MethodPost, "/api/tasks", nil, r, &v)
	return v, err
}

// Summary counts a task's per-agent results by state.
type Summary struct {
	Total    int `json:"total"`
	Pending  int `json:"pending"`
	Running  int `json:"running"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	TimedOut int `json:"timed_out"`
	Skipped  int `json:"skipped"`
	Lost     int `json:"lost"`
}

// Finished counts the results that are final.
func (s Summary) Finished() int { return s.OK + s.Failed + s.TimedOut + s.Skipped + s.Lost }

// Task is one fleet task in a listing.
type Task struct {
	ID         string  `json:"id"`
	Kind       string  `json:"kind"`
	State      string  `json:"state"`
	CreatedBy  string  `json:"created_by"`
	CreatedAt  Time    `json:"created_at"`
	StartedAt  Time    `json:"started_at"`
	FinishedAt Time    `json:"finished_at"`
	Msg        string  `json:"msg"`
	Summary    Summary `json:"summary"`
}

// Final reports whether a task state is final.
func Final(state string) bool { return state == "done" || state == "failed" || state == "cancelled" }

// AgentResult is one agent's part of a fleet task.
type AgentResult struct {
	Agent       string `json:"agent"`
	State       string `json:"state"`
	ExitCode    int    `json:"exit_code"`
	Msg         string `json:"msg"`
	StartedAt   Time   `json:"started_at"`
	EndedAt     Time   `json:"ended_at"`
	OutputHead  string `json:"output_head"`
	OutputTail  string `json:"output_tail"`
	Dropped     int64  `json:"dropped"`
	OutputBytes int64  `json:"output_bytes"`
	NotStored   int64  `json:"not_stored"`
}

// TaskView is a fleet task with its per-agent results.
type TaskView struct {
	Task
	Request json.RawMessage `json:"request"`
	// Upgrade is the request of an upgrade task (kind upgrade).
	Upgrade     json.RawMessage `json:"upgrade"`
	MaxInFlight *int            `json:"max_in_flight"`
	Agents      []AgentResult   `json:"agents"`
}

// IsInstall reports whether the task installs software (its output is
// the action log, one JSON action per line).
func (v TaskView) IsInstall() bool {
	var r struct {
		Install json.RawMessage `json:"install"`
	}
	return json.Unmarshal(v.Request, &r) == nil && len(r.Install) > 0 && string(r.Install) != "null"
}

// Tasks lists fleet and upgrade tasks, newest first, up to limit, and the
// total.
func (c *Client) Tasks(ctx context.Context, states []string, limit int) ([]Task, int, error) {
	q := url.Values{}
	if len(states) > 0 {
		q.Set("state", strings.Join(states, ","))
	}
	return getPages[Task](ctx, c, "/api/tasks", q, limit)
}

// Task returns a fleet task with all its per-agent results.
func (c *Client) Task(ctx context.Context, id string) (TaskView, error) {
	var v TaskView
	for page := 1; ; page++ {
		var p TaskView
		h, err := c.Call(ctx, http.MethodGet, "/api/tasks/"+url.PathEscape(id), url.Values{"page": {strconv.Itoa(page)}, "size": {strconv.Itoa(MaxPage)}}, nil, &p)
		if err != nil {
			return v, err
		}
		if page == 1 {
			v = p
		} else {
			v.Agents = append(v.Agents, p.Agents...)
		}
		total, _ := strconv.Atoi(h.Get("X-Total-Count"))
		if len(p.Agents) < MaxPage || len(v.Agents) >= total {
			return v, nil
		}
	}
}

// CancelTask cancels a fleet task (409 when it already ended).
func (c *Client) CancelTask(ctx context.Context, id string) error {
	_, err := c.Call(ctx, http.MethodDelete, "/api/tasks/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// TaskOutput streams an agent's stored output of a fleet task from byte
// from on.
func (c *Client) TaskOutput(ctx context.Context, id, agent string, from int64) (io.ReadCloser, error) {
	h := http.Header{}
	if from > 0 {
		h.Set("Range", fmt.Sprintf("bytes=%d-", from))
	}
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: "/api/tasks/" + url.PathEscape(id) + "/agents/" + url.PathEscape(agent) + "/output",
		Header: h, Stream: true})
	if err != nil {
		if from > 0 && IsStatus(err, http.StatusRequestedRangeNotSatisfiable) {
			return io.NopCloser(strings.NewReader("")), nil // nothing beyond from
		}
		return nil, err
	}
	return resp.Body, nil
}

// Event is one event of a task's stream.
type Event struct {
	ID       int64  `json:"id"`
	Type     string `json:"type"` // state, output, done, dropped
	Agent    string `json:"agent"`
	State    string `json:"state"`
	ExitCode *int   `json:"exit_code"`
	Msg      string `json:"msg"`
	Offset   *int64 `json:"offset"`
	Data     string `json:"data"`
}

// ErrEventsDropped is a stream the server ended because we lagged.
var ErrEventsDropped = errors.New("event stream dropped by the server (client too slow)")

// maxEvent bounds one event: 64 KiB of output, JSON-escaped.
const maxEvent = 1 << 20

// Events follows a task's Server-Sent Events until the done event (the
// last one yielded), the end of the stream, or an error. A stream the
// server drops yields ErrEventsDropped; the caller reconnects.
func (c *Client) Events(ctx context.Context, id string) (iter.Seq2[Event, error], error) {
	events, err := c.stream(ctx, "/api/tasks/"+url.PathEscape(id)+"/events", nil, maxEvent)
	if err != nil {
		return nil, err
	}
	return func(yield func(Event, error) bool) {
		for ev, err := range events {
			if err != nil {
				yield(Event{}, err)
				return
			}
			e, err := DecodeEvent(ev.Type, ev.Data)
			if err != nil {
				if !yield(Event{}, err) {
					return
				}
				continue
			}
			if e.Type == "dropped" {
				yield(e, ErrEventsDropped)
				return
			}
			if !yield(e, nil) || e.Type == "done" {
				return
			}
		}
	}, nil
}

// DecodeEvent reads one event's data; typ is the SSE event name.
func DecodeEvent(typ, data string) (Event, error) {
	var e Event
	if data != "" {
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return Event{}, fmt.Errorf("event %q: bad data: %w", typ, err)
		}
	}
	if typ != "" {
		e.Type = typ
	}
	return e, nil
}

// LayoutRequest is the form of POST /api/layout/run but the archive.
type LayoutRequest struct {
	IDs         []string
	Mode        string // sequence, parallel, evenodd
	Continue    bool
	User, Auth  string
	Concurrency string
	MaxErrors   string
}

// RunLayout submits a layout archive (tar or tar.gz) and returns its id.
func (c *Client) RunLayout(ctx context.Context, r LayoutRequest, name string, archive []byte) (string, error) {
	fields := [][2]string{{"ids", strings.Join(r.IDs, ",")}, {"mode", r.Mode}, {"continue", strconv.FormatBool(r.Continue)},
		{"user", r.User}, {"auth", r.Auth}, {"concurrency", r.Concurrency}, {"max_errors", r.MaxErrors}}
	body, ct, err := multipartBody(fields, name, archive)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(ctx, Request{Method: http.MethodPost, Path: "/api/layout/run", Header: http.Header{"Content-Type": {ct}},
		Body: func() (io.Reader, error) { return strings.NewReader(body), nil }})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var id string
	if err := decodePayload(resp, &id); err != nil {
		return "", err
	}
	return id, nil
}

// LayoutStep is one step of a layout on one agent.
type LayoutStep struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped"`
	Code    int    `json:"code"`
	Output  string `json:"output"`
	Msg     string `json:"msg"`
}

// LayoutNode is a layout's progress on one agent.
type LayoutNode struct {
	ID       string       `json:"id"`
	State    string       `json:"state"`
	Created  Time         `json:"created"`
	Finished Time         `json:"finished"`
	OK       bool         `json:"ok"`
	Msg      string       `json:"msg"`
	Steps    []LayoutStep `json:"steps"`
}

// LayoutStatus is GET /api/layout/{id}.
type LayoutStatus struct {
	ID            string       `json:"id"`
	Name          string       `json:"name"`
	Mode          string       `json:"mode"`
	State         string       `json:"state"`
	Msg           string       `json:"msg"`
	Done          bool         `json:"done"`
	Created       Time         `json:"created"`
	Finished      Time         `json:"finished"`
	TotalCount    int          `json:"total_count"`
	FinishedCount int          `json:"finished_count"`
	Nodes         []LayoutNode `json:"nodes"`
}

// Layout returns a layout's progress.
func (c *Client) Layout(ctx context.Context, id string) (LayoutStatus, error) {
	var v LayoutStatus
	_, err := c.Call(ctx, http.MethodGet, "/api/layout/"+url.PathEscape(id), nil, nil, &v)
	return v, err
}

// CancelLayout cancels a layout.
func (c *Client) CancelLayout(ctx context.Context, id string) error {
	_, err := c.Call(ctx, http.MethodDelete, "/api/layout/"+url.PathEscape(id), nil, nil, nil)
	return err
}
