package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// ServerInfo is GET /api/info/server.
type ServerInfo struct {
	ID         string `json:"id"`
	Version    string `json:"version"`
	Agents     int    `json:"agents"`
	IsBlocking bool   `json:"is_blocking"`
}

// ServerInfo asks the server who it is.
func (c *Client) ServerInfo(ctx context.Context) (ServerInfo, error) {
	var v ServerInfo
	_, err := c.Call(ctx, http.MethodGet, "/api/info/server", nil, nil, &v)
	return v, err
}

// WhoAmI is GET /api/whoami: the token's name and what it may do.
type WhoAmI struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	Selector  string   `json:"selector"`
	ExpiresAt Time     `json:"expires_at"`
	ReadOnly  bool     `json:"read_only"`
}

// WhoAmI describes the token in use. Servers before scoped tokens have no
// such route: IsRouteMissing(err).
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var v WhoAmI
	_, err := c.Call(ctx, http.MethodGet, "/api/whoami", nil, nil, &v)
	return v, err
}

// Agent is one agent of GET /api/agents.
type Agent struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Version     string            `json:"version"`
	IP          string            `json:"ip"`
	MAC         string            `json:"mac"`
	OS          string            `json:"os"`
	Platform    string            `json:"platform"`
	Arch        string            `json:"arch"`
	IsBusy      bool              `json:"is_busy"`
	IsOnline    bool              `json:"is_online"`
	HostName    string            `json:"host_name"`
	Labels      map[string]string `json:"labels"`
	FirstSeen   Time              `json:"first_seen"`
	LastSeen    Time              `json:"last_seen"`
	ConnectedAt Time              `json:"connected_at"`
	// Member is the cluster member holding the agent's session (only in a
	// cluster, only while it is online).
	Member string `json:"member,omitempty"`
}

// AgentFilter narrows GET /api/agents; empty fields do not filter.
type AgentFilter struct {
	Labels   string // label selector: k=v, k!=v, k, !k
	Type     string
	OS       string
	Platform string
	Keyword  string
	Online   *bool
}

func (f AgentFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("labels", f.Labels)
	set("type", f.Type)
	set("os", f.OS)
	set("platform", f.Platform)
	set("keyword", f.Keyword)
	if f.Online != nil {
		q.Set("online", strconv.FormatBool(*f.Online))
	}
	return q
}

// MaxPage is the largest page the API serves.
const MaxPage = 1000

// Agents lists the agents matching f, all pages up to limit (0: all), and
// the total the server counts.
func (c *Client) Agents(ctx context.Context, f AgentFilter, limit int) ([]Agent, int, error) {
	return getPages[Agent](ctx, c, "/api/agents", f.query(), limit)
}

// getPages GETs a paged list (page, size; the server's count in
// X-Total-Count): the pages up to limit items (0: all), and the total.
func getPages[T any](ctx context.Context, c *Client, path string, q url.Values, limit int) ([]T, int, error) {
	var all []T
	total := 0
	size := MaxPage // the same for every page: page N starts at (N-1)×size
	if limit > 0 {
		size = min(max(limit, 10), MaxPage)
	}
	for page := 1; ; page++ {
		q.Set("page", strconv.Itoa(page))
		q.Set("size", strconv.Itoa(size))
		var list []T
		h, err := c.Call(ctx, http.MethodGet, path, q, nil, &list)
		if err != nil {
			return nil, 0, err
		}
		total, _ = strconv.Atoi(h.Get("X-Total-Count"))
		all = append(all, list...)
		if len(list) < size || limit > 0 && len(all) >= limit || total > 0 && len(all) >= total {
			break
		}
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, max(total, len(all)), nil
}

// Agent returns one agent.
func (c *Client) Agent(ctx context.Context, id string) (Agent, error) {
	var a Agent
	_, err := c.Call(ctx, http.MethodGet, "/api/agents/"+url.PathEscape(id), nil, nil, &a)
	return a, err
}

// SetLabels replaces an agent's labels.
func (c *Client) SetLabels(ctx context.Context, id string, labels map[string]string) error {
	if labels == nil {
		labels = map[string]string{}
	}
	_, err := c.Call(ctx, http.MethodPut, "/api/agents/"+url.PathEscape(id)+"/labels", nil, map[string]any{"labels": labels}, nil)
	return err
}

// LogFile is one of an agent's log files.
type LogFile struct {
	Name       string `json:"name"`
	Size       int64  `json:"size"`
	ModTime    Time   `json:"mod_time"`
	ModifiedAt Time   `json:"modified_at"`
}

// AgentLogs lists an agent's log files.
func (c *Client) AgentLogs(ctx context.Context, id string) ([]LogFile, error) {
	var v []LogFile
	_, err := c.Call(ctx, http.MethodGet, "/api/agents/"+url.PathEscape(id)+"/logs", nil, nil, &v)
	for i := range v {
		v[i].ModTime = precise(v[i].ModifiedAt, v[i].ModTime)
	}
	return v, err
}

// AgentLogZip streams the zip of some of an agent's log files.
func (c *Client) AgentLogZip(ctx context.Context, id string, files []string) (*http.Response, error) {
	return c.Do(ctx, Request{Method: http.MethodGet, Path: "/api/agents/" + url.PathEscape(id) + "/log/download",
		Query: url.Values{"files": files}, Stream: true})
}

// AuditEntry is one entry of GET /api/audit.
type AuditEntry struct {
	ID        int64           `json:"id"`
	Time      Time            `json:"time"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	RequestID string          `json:"request_id"`
	Detail    json.RawMessage `json:"detail,omitempty"`
	Result    string          `json:"result"`
}

// AuditFilter narrows GET /api/audit.
type AuditFilter struct {
	Actor, Action, Target string
	Since, Until          string // RFC 3339 or unix seconds
}

// Audit lists audit entries, newest first, up to limit, and the total.
func (c *Client) Audit(ctx context.Context, f AuditFilter, limit int) ([]AuditEntry, int, error) {
	q := url.Values{}
	for k, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target, "since": f.Since, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return getPages[AuditEntry](ctx, c, "/api/audit", q, limit)
}
