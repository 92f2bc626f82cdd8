package client

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ExecRequest is the body of POST /api/exec/{id}/run.
type ExecRequest struct {
	Cmd     string   `json:"cmd"`
	Args    []string `json:"args,omitempty"`
	Auth    string   `json:"auth,omitempty"`
	User    string   `json:"user,omitempty"`
	WorkDir string   `json:"workdir,omitempty"`
	Env     []string `json:"env,omitempty"`
	Timeout int      `json:"timeout,omitempty"` // seconds
	Result  bool     `json:"result"`            // wait for the end
	Pipe    bool     `json:"pipe,omitempty"`
}

// ExecStarted is the reply of a run that does not wait.
type ExecStarted struct {
	ID      string `json:"id"` // task id
	Begin   Time   `json:"begin"`
	BeginAt Time   `json:"begin_at"`
	PID     int    `json:"pid"`
}

// StartExec starts a command and returns at once.
func (c *Client) StartExec(ctx context.Context, agent string, r ExecRequest) (ExecStarted, error) {
	r.Result = false
	var v ExecStarted
	_, err := c.Call(ctx, http.MethodPost, "/api/exec/"+url.PathEscape(agent)+"/run", nil, r, &v)
	v.Begin = precise(v.BeginAt, v.Begin)
	return v, err
}

// ExecStatus is GET /api/exec/{id}/status/{pid}.
type ExecStatus struct {
	TaskID  string `json:"task_id"`
	Begin   Time   `json:"begin"`
	BeginAt Time   `json:"begin_at"`
	End     Time   `json:"end"`
	EndAt   Time   `json:"end_at"`
	Done    bool   `json:"done"`
	Code    int    `json:"code"`
	State   string `json:"state"`
	Msg     string `json:"msg"`
}

func execPath(agent string, pid int, what string) string {
	return "/api/exec/" + url.PathEscape(agent) + "/" + what + "/" + strconv.Itoa(pid)
}

// ExecStatus returns a command's state.
func (c *Client) ExecStatus(ctx context.Context, agent string, pid int) (ExecStatus, error) {
	var v ExecStatus
	_, err := c.Call(ctx, http.MethodGet, execPath(agent, pid, "status"), nil, nil, &v)
	v.Begin, v.End = precise(v.BeginAt, v.Begin), precise(v.EndAt, v.End)
	return v, err
}

// Pty returns the output produced since the previous call and whether the
// command has ended (X-Done).
func (c *Client) Pty(ctx context.Context, agent string, pid int) ([]byte, bool, error) {
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: execPath(agent, pid, "pty")})
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return b, false, &ConnError{Server: resp.Request.URL.Host, Err: err}
	}
	return b, resp.Header.Get("X-Done") == "true", nil
}

// KillExec kills a command's process group.
func (c *Client) KillExec(ctx context.Context, agent string, pid int) error {
	_, err := c.Call(ctx, http.MethodDelete, execPath(agent, pid, "kill"), nil, nil, nil)
	return err
}

// ScriptRequest is the form of POST /api/script/{id}/run but the file.
type ScriptRequest struct {
	Type    string
	Args    []string
	Auth    string
	User    string
	WorkDir string
	Env     []string
	Timeout int // seconds
}

// ScriptResult is the reply of a script run.
type ScriptResult struct {
	ID          string `json:"id"`
	Begin       Time   `json:"begin"`
	BeginAt     Time   `json:"begin_at"`
	End         Time   `json:"end"`
	EndAt       Time   `json:"end_at"`
	Code        int    `json:"code"`
	Data        []byte `json:"data"`
	Running     bool   `json:"running"`
	State       string `json:"state"`
	Msg         string `json:"msg"`
	Dropped     int64  `json:"dropped"`
	OutputBytes int64  `json:"output_bytes"`
}

// RunScript uploads a script to the agent, runs it and waits for the end.
func (c *Client) RunScript(ctx context.Context, agent, name string, script []byte, r ScriptRequest) (ScriptResult, error) {
	sum := md5.Sum(script)
	fields := [][2]string{{"type", r.Type}, {"auth", r.Auth}, {"user", r.User}, {"workdir", r.WorkDir}, {"md5", hex.EncodeToString(sum[:])}}
	if r.Timeout > 0 {
		fields = append(fields, [2]string{"timeout", strconv.Itoa(r.Timeout)})
	}
	for _, a := range r.Args {
		fields = append(fields, [2]string{"args", a})
	}
	for _, e := range r.Env {
		fields = append(fields, [2]string{"env", e})
	}
	body, ct, err := multipartBody(fields, name, script)
	if err != nil {
		return ScriptResult{}, err
	}
	// The server waits for the script's end (at most its timeout + 5 s).
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout+scriptWait(r.Timeout))
	defer cancel()
	resp, err := c.Do(ctx, Request{Method: http.MethodPost, Path: "/api/script/" + url.PathEscape(agent) + "/run", Stream: true,
		Header: http.Header{"Content-Type": {ct}},
		Body:   func() (io.Reader, error) { return strings.NewReader(body), nil }})
	if err != nil {
		return ScriptResult{}, err
	}
	defer resp.Body.Close()
	var v ScriptResult
	if err := decodePayload(resp, &v); err != nil {
		return v, err
	}
	v.Begin, v.End = precise(v.BeginAt, v.Begin), precise(v.EndAt, v.End)
	return v, nil
}

func scriptWait(timeout int) time.Duration {
	if timeout <= 0 {
		timeout = 60
	}
	return time.Duration(timeout+5) * time.Second
}

// FileEntry is one entry of GET /api/file/{id}/ls.
type FileEntry struct {
	Name       string   `json:"name"`
	Auth       FileMode `json:"auth"`
	User       string   `json:"user"`
	Group      string   `json:"group"`
	Size       int64    `json:"size"`
	ModTime    Time     `json:"mod_time"`
	ModifiedAt Time     `json:"modified_at"`
	IsDir      bool     `json:"is_dir"`
	IsLink     bool     `json:"is_link"`
	LinkDir    string   `json:"link_dir"`
}

// Ls lists a directory on an agent.
func (c *Client) Ls(ctx context.Context, agent, dir string) ([]FileEntry, error) {
	var v []FileEntry
	_, err := c.Call(ctx, http.MethodGet, "/api/file/"+url.PathEscape(agent)+"/ls", url.Values{"dir": {dir}}, nil, &v)
	if err != nil {
		return nil, fmt.Errorf("ls %s:%s: %w", agent, dir, err)
	}
	for i := range v {
		v[i].ModTime = precise(v[i].ModifiedAt, v[i].ModTime)
	}
	return v, nil
}
