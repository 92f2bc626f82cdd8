package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/libagent/protocol"
)

// Agent-defined message types: the numbers agent authors use for their own
// messages (docs/protocol.md). Built-in types have routes of their own with
// their guard rails (tasks, audit detail, secrets kept out), so this route
// refuses them.
const (
	MinCallType = 200
	MaxCallType = 999
	// maxCallKeys bounds the payload keys of one call.
	maxCallKeys = 16
)

// CallRequest is the body of POST /api/agents/{id}/call.
type CallRequest struct {
	// Type is the agent-defined message type, 200–999.
	Type int `json:"type"`
	// Payload holds the message's payload keys, e.g. {"echo":{"text":"hi"}}.
	Payload map[string]json.RawMessage `json:"payload"`
}

// CallReply is the agent's answer.
type CallReply struct {
	Type    int                        `json:"type"`
	Payload map[string]json.RawMessage `json:"payload,omitempty"`
}

// call sends an agent-defined message to one agent and returns its reply, so
// a new agent's own messages are reachable through the API without a route
// of their own.
func (s *Server) call(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var req CallRequest
	// The body first: reading parameters parses a form body, and clients
	// like curl -d label JSON as a form.
	if err := japi.DecodeJSON(r, &req, s.maxBody); err != nil {
		return err
	}
	p := japi.Params(r)
	timeout := s.timeout(p)
	if err := p.Err(); err != nil {
		return err
	}
	if req.Type < MinCallType || req.Type > MaxCallType {
		return japi.BadParam("type", fmt.Sprintf("must be an agent-defined type between %d and %d", MinCallType, MaxCallType))
	}
	if len(req.Payload) > maxCallKeys {
		return japi.BadParam("payload", fmt.Sprintf("at most %d keys", maxCallKeys))
	}
	m := &protocol.Msg{Type: protocol.Type(req.Type), Extra: map[string]json.RawMessage{}}
	for k, v := range req.Payload {
		if k == "" || strings.ContainsAny(k, "\x00\"\\") {
			return japi.BadParam("payload", fmt.Sprintf("bad key %q", k))
		}
		m.Extra[k] = v
	}
	if _, err := protocol.Encode(m); err != nil { // clashes with envelope keys
		return japi.BadParam("payload", strings.TrimPrefix(err.Error(), fmt.Sprintf("protocol: encode %s: ", m.Type)))
	}
	SetAudit(r, id, map[string]any{"type": req.Type})
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	rep, err := s.o.Hub.Call(ctx, id, m)
	if err != nil {
		return s.callError(ctx, timeout, err)
	}
	japi.OK(w, r, CallReply{Type: int(rep.Type), Payload: rep.Extra})
	return nil
}
