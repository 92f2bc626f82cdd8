package api

import (
	"context"
	"errors"
	"net/http"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/store"
)

// SecretStore is where the hub keeps the agents' secret hashes (the
// server's write-behind store: a reset must also drop a hash not yet
// written).
type SecretStore interface {
	SecretHash(ctx context.Context, agentID string) ([]byte, error)
	SetSecretHash(ctx context.Context, agentID string, hash []byte) error
}

// SecretReset is the payload of DELETE /api/agents/{id}/secret.
type SecretReset struct {
	ID        string `json:"id"`
	HadSecret bool   `json:"had_secret"`
}

// RoutesSecrets registers DELETE /api/agents/{id}/secret: it forgets the
// agent's per-agent secret (auth.v1), so that the next connection with the
// enrollment token is treated as a new agent and issued a new secret — for
// an agent whose state file was lost, or a host gone back to a v1 agent.
// A live session is left alone.
func (s *Server) RoutesSecrets(st SecretStore) {
	s.Handle("DELETE /api/agents/{id}/secret", func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		_, err := s.o.Store.GetAgent(r.Context(), id)
		_, online := s.o.Hub.Session(id)
		switch {
		case err == nil, online && errors.Is(err, store.ErrNotFound): // connected, not stored yet
		case errors.Is(err, store.ErrNotFound):
			return errAgentNotFound
		default:
			return err
		}
		had, err := st.SecretHash(r.Context(), id)
		if err != nil {
			return err
		}
		if err := st.SetSecretHash(r.Context(), id, nil); err != nil {
			return err
		}
		japi.OK(w, r, SecretReset{ID: id, HadSecret: had != nil})
		return nil
	}, Scope(authz.Admin))
}
