package server

import (
	"context"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/api"
	"github.com/agentfleet/agent-server/internal/hub"
)

// fleet adapts the hub to api.Fleet.
type fleet struct{ h *hub.Hub }

func sessionOf(in hub.SessionInfo) api.Session {
	return api.Session{ID: in.ID, Type: in.Type, Version: in.Version, ConnectedAt: in.ConnectedAt, LastSeen: in.LastSeen, Busy: in.Pending > 0}
}

func (f fleet) Session(id string) (api.Session, bool) {
	s, ok := f.h.Session(id)
	if !ok {
		return api.Session{}, false
	}
	return sessionOf(s.Info()), true
}

// Count is the number of live sessions (GET /api/info/server).
func (f fleet) Count() int { return f.h.Count() }

func (f fleet) Sessions() []api.Session {
	infos := f.h.Sessions()
	out := make([]api.Session, len(infos))
	for i, in := range infos {
		out[i] = sessionOf(in)
	}
	return out
}

func (f fleet) Call(ctx context.Context, id string, m *protocol.Msg) (*protocol.Msg, error) {
	return f.h.Call(ctx, id, m)
}

func (f fleet) Stream(ctx context.Context, id string, m *protocol.Msg) (api.Replies, error) {
	st, err := f.h.Stream(ctx, id, m)
	if err != nil {
		return nil, err
	}
	return st, nil
}
