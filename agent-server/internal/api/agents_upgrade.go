package api

import (
	"net/http"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/tasks"
)

// upgradeAudit is the detail of an upgrade task's audit entry.
type upgradeAudit struct {
	Selector  tasks.Selector `json:"selector"`
	AgentType string         `json:"agent_type"`
	Package   string         `json:"package,omitempty"`
	Version   string         `json:"version,omitempty"`
	Agents    int            `json:"agents"`
}

// upgrade is POST /api/agents/upgrade: an upgrade task (docs/upgrade.md),
// followed like a fleet task with GET /api/tasks/{id} and its events.
func (x *taskRoutes) upgrade(w http.ResponseWriter, r *http.Request) error {
	var req tasks.UpgradeRequest
	if err := japi.DecodeJSON(r, &req, x.s.maxBody); err != nil {
		return err
	}
	if err := x.s.limitSelector(r, &req.Selector); err != nil {
		return err
	}
	au := upgradeAudit{Selector: req.Selector, AgentType: req.AgentType, Package: req.Package, Version: req.Version}
	SetAudit(r, "", au)
	t, err := x.svc.SubmitUpgrade(r.Context(), req, actor(r))
	return created(w, r, t, err, func(n int) any { au.Agents = n; return au })
}
