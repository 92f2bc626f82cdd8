package api

import (
	"net/http"

	"github.com/agentfleet/agent-server/internal/execsvc"
)

// transfer serves the one-shot transfer URLs agents GET (uploads) and PUT
// (downloads), authenticated by the X-Token header rather than an API
// token.
func (x *execRoutes) transfer(w http.ResponseWriter, r *http.Request) error {
	if err := x.svc.ServeTransfer(w, r, r.PathValue("xid")); err != nil {
		return x.err(r.Context(), 0, err)
	}
	return nil
}

// TransferPath is where the transfer routes live; execsvc builds its URLs
// with it.
const TransferPath = execsvc.TransferPath
