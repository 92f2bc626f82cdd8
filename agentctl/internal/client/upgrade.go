package client

import (
	"context"
	"net/http"
)

// UpgradeRequest is the body of POST /api/agents/upgrade (docs/upgrade.md):
// the agents of AgentType the Selector matches get the binary Package of
// the server's repository, or the release binary of Version for their os
// and arch. Signature signs Package; Signatures maps package names to
// their signatures (the .sig texts of make release).
type UpgradeRequest struct {
	Selector    Selector          `json:"selector"`
	AgentType   string            `json:"agent_type"`
	Package     string            `json:"package,omitempty"`
	Version     string            `json:"version,omitempty"`
	Signature   string            `json:"signature,omitempty"`
	Signatures  map[string]string `json:"signatures,omitempty"`
	Deadline    int               `json:"deadline,omitempty"` // seconds; 0: the server's 120
	Stay        int               `json:"stay,omitempty"`     // seconds; 0: the server's 10
	Concurrency string            `json:"concurrency,omitempty"`
	MaxErrors   string            `json:"max_errors,omitempty"`
	Canary      int               `json:"canary,omitempty"`
	BatchWait   string            `json:"batch_wait,omitempty"`
	WaitOffline string            `json:"wait_offline,omitempty"`
}

// UpgradeAgents starts an upgrade task and returns it; it is followed like
// a fleet task (Task, Events, CancelTask).
func (c *Client) UpgradeAgents(ctx context.Context, r UpgradeRequest) (TaskCreated, error) {
	var v TaskCreated
	_, err := c.Call(ctx, http.MethodPost, "/api/agents/upgrade", nil, r, &v)
	return v, err
}
