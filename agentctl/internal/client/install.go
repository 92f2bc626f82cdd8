package client

import (
	"context"
	"net/http"
)

// InstallRequest is the body of POST /api/install/run: ID (one agent) or
// Selector (a fleet install), and exactly one of URI (a package of the
// server's repository) and URL.
type InstallRequest struct {
	ID          string    `json:"id,omitempty"`
	Selector    *Selector `json:"selector,omitempty"`
	URI         string    `json:"uri,omitempty"`
	URL         string    `json:"url,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
	Kind        string    `json:"kind,omitempty"`
	Dir         string    `json:"dir,omitempty"`
	Timeout     int       `json:"timeout,omitempty"` // seconds; 0: the server's 300
	Auth        string    `json:"auth,omitempty"`
	User        string    `json:"user,omitempty"`
	Pass        string    `json:"pass,omitempty"`
	Deps        bool      `json:"deps,omitempty"`
	Concurrency string    `json:"concurrency,omitempty"`
	MaxErrors   string    `json:"max_errors,omitempty"`
	Canary      int       `json:"canary,omitempty"`
	BatchWait   string    `json:"batch_wait,omitempty"`
	WaitOffline string    `json:"wait_offline,omitempty"`
}

// InstallRun starts an install (a fleet task) and returns it.
func (c *Client) InstallRun(ctx context.Context, r InstallRequest) (TaskCreated, error) {
	var v TaskCreated
	_, err := c.Call(ctx, http.MethodPost, "/api/install/run", nil, r, &v)
	return v, err
}
