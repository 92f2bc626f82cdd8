package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// routesAgents registers the routes of the agent records and of requests
// to one agent that are not a feature of their own (its logs, a call of
// an agent-defined message).
func (s *Server) routesAgents() {
	s.Handle("GET /api/agents", s.listAgents, Scope(authz.AgentsRead))
	s.Handle("GET /api/agents/{id}", s.getAgent, Scope(authz.AgentsRead))
	s.Handle("PUT /api/agents/{id}/labels", s.putLabels, Scope(authz.AgentsWrite))
	s.Handle("GET /api/agents/{id}/logs", s.agentLogs, Scope(authz.LogsRead), Expensive())
	s.Handle("GET /api/agents/{id}/log/download", s.agentLogDownload, Scope(authz.LogsRead), Expensive())
	s.Handle("POST /api/agents/{id}/call", s.call, Scope(authz.ExecRun), Expensive())
}

// Agent is one agent in the API (the 1.5 fields first).
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
	FirstSeen   time.Time         `json:"first_seen"`
	LastSeen    time.Time         `json:"last_seen"`
	ConnectedAt time.Time         `json:"connected_at,omitzero"`
	// Member is the cluster member holding the agent's session (only in a
	// cluster, only while it is online).
	Member string `json:"member,omitempty"`
}

func agentView(a store.Agent, sess hub.SessionInfo, online bool) Agent {
	v := Agent{
		ID: a.ID, Type: a.Type, Version: a.Version, IP: a.IP, MAC: a.MAC, OS: a.OS, Platform: a.Platform,
		Arch: a.Arch, HostName: a.HostName, Labels: a.Labels, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen,
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if online {
		v.IsOnline, v.IsBusy, v.ConnectedAt = true, sess.Pending > 0, sess.ConnectedAt
		// The store's last_seen of a connected agent is written only every
		// few minutes (and at disconnect); the live session knows better.
		if sess.LastSeen.After(v.LastSeen) {
			v.LastSeen = sess.LastSeen
		}
		if v.Type == "" {
			v.Type, v.Version = sess.Type, sess.Version
		}
	}
	return v
}

// sessionInfo returns a snapshot of the live session of agent id.
func (s *Server) sessionInfo(id string) (hub.SessionInfo, bool) {
	sess, ok := s.o.Hub.Session(id)
	if !ok {
		return hub.SessionInfo{}, false
	}
	return sess.Info(), true
}

// maxAgentScan bounds the agents read to filter by online=false in memory.
const maxAgentScan = 200000

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	f := store.AgentFilter{
		Type:     p.String("type", ""),
		OS:       p.String("os", ""),
		Platform: p.String("platform", ""),
		Keyword:  p.String("keyword", ""),
		Sort:     p.String("sort", ""),
	}
	f.Page = p.Int("page", 1, 1, 1<<30)
	// 1.5 had no upper bound (clients ask for "everything" with a large
	// size); pages beyond the store's are cut from a scan.
	f.Size = p.Int("size", store.DefaultPageSize, 1, maxAgentScan)
	hasOnline := p.Has("online")
	online := p.Bool("online", false)
	sel := p.String("labels", "")
	if err := p.Err(); err != nil {
		return err
	}
	if f.Sort != "" {
		if _, err := store.AgentOrder(f.Sort); err != nil {
			return japi.BadParam("sort", fault.Message(err))
		}
	}
	if sel != "" {
		m, err := store.ParseSelector(sel)
		if err != nil {
			return japi.BadParam("labels", fault.Message(err))
		}
		f.Labels = m
	}
	if err := limitFilter(r, &f); err != nil {
		return err
	}
	// The online filter needs every live session; a plain listing looks up
	// only the page's agents (O(page), not O(fleet): the console's fleet
	// page asks for one every few seconds). In a cluster, the sessions of
	// the other members are read from the store the same way.
	sessions := map[string]hub.SessionInfo{}
	var remote map[string]store.AgentSession
	if hasOnline {
		for _, ss := range s.o.Hub.Sessions() {
			sessions[ss.ID] = ss
		}
		if s.o.Cluster != nil {
			all, err := s.o.Cluster.Owners(r.Context(), nil)
			if err != nil {
				return mapError(err)
			}
			remote = all
			for id, o := range all {
				if _, local := sessions[id]; local || o.Member == s.o.Cluster.ID() {
					delete(remote, id) // a session ended here but not cleared yet is not online
					continue
				}
				sessions[id] = hub.SessionInfo{ID: id, ConnectedAt: o.ConnectedAt}
			}
		}
	}
	var (
		list  []store.Agent
		total int
		err   error
	)
	big := f.Size > store.MaxPageSize
	switch {
	case hasOnline && online:
		if len(sessions) == 0 {
			break
		}
		if big || len(sessions) > store.MaxFilterIDs {
			list, total, err = s.scanAgents(r.Context(), f, func(id string) bool { _, ok := sessions[id]; return ok })
			break
		}
		for id := range sessions {
			f.IDs = append(f.IDs, id)
		}
		list, total, err = s.o.Store.ListAgents(r.Context(), f)
	case hasOnline:
		list, total, err = s.scanAgents(r.Context(), f, func(id string) bool { _, ok := sessions[id]; return !ok })
	case big:
		list, total, err = s.scanAgents(r.Context(), f, func(string) bool { return true })
	default:
		list, total, err = s.o.Store.ListAgents(r.Context(), f)
	}
	if err != nil {
		return mapError(err)
	}
	if !hasOnline && s.o.Cluster != nil {
		var ids []string
		for _, a := range list {
			if _, ok := s.o.Hub.Session(a.ID); !ok {
				ids = append(ids, a.ID)
			}
		}
		if len(ids) > 0 {
			if remote, err = s.o.Cluster.Owners(r.Context(), ids); err != nil {
				return mapError(err)
			}
			for id, o := range remote {
				if o.Member == s.o.Cluster.ID() {
					delete(remote, id) // ended here, not cleared yet
				}
			}
		}
	}
	out := make([]Agent, 0, len(list))
	for _, a := range list {
		ss, ok := sessions[a.ID]
		if !hasOnline {
			ss, ok = s.sessionInfo(a.ID)
		}
		v := agentView(a, ss, ok && remote[a.ID].Member == "")
		s.setMember(&v, remote)
		out = append(out, v)
	}
	return okPage(w, r, out, total)
}

// setMember fills in the member holding v's session in a cluster: the
// other member's for an agent in remote (v is then online since its
// connection there; is_busy is not known here), this one's for a session
// here.
func (s *Server) setMember(v *Agent, remote map[string]store.AgentSession) {
	c := s.o.Cluster
	if c == nil {
		return
	}
	if o, ok := remote[v.ID]; ok {
		v.IsOnline, v.Member, v.ConnectedAt = true, o.Member, o.ConnectedAt
		return
	}
	if v.IsOnline {
		v.Member = c.ID()
	}
}

// limitFilter adds the selector of a limited token to f: lists leave out
// the agents the token does not reach.
func limitFilter(r *http.Request, f *store.AgentFilter) error {
	id, _ := IdentityFrom(r.Context())
	if !id.Limited() {
		return nil
	}
	f.Labels = append(f.Labels, id.Labels()...)
	if len(f.Labels) > store.MaxLabels {
		return japi.BadParam("labels", fmt.Sprintf("with the token's selector more than %d terms", store.MaxLabels))
	}
	return nil
}

// scanAgents pages through every agent matching f and keeps those keep
// accepts, then cuts f's page out of them.
func (s *Server) scanAgents(ctx context.Context, f store.AgentFilter, keep func(string) bool) ([]store.Agent, int, error) {
	page, size := f.Page, f.Size
	var all []store.Agent
	f.Size = store.MaxPageSize
	for f.Page = 1; ; f.Page++ {
		list, _, err := s.o.Store.ListAgents(ctx, f)
		if err != nil {
			return nil, 0, err
		}
		for _, a := range list {
			if keep(a.ID) {
				all = append(all, a)
			}
		}
		if len(list) < store.MaxPageSize || f.Page*store.MaxPageSize >= maxAgentScan {
			break
		}
	}
	start := (page - 1) * size
	if start >= len(all) {
		return nil, len(all), nil
	}
	return all[start:min(len(all), start+size)], len(all), nil
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	id := japi.Params(r).Path("id")
	a, err := s.o.Store.GetAgent(r.Context(), id)
	sess, online := s.sessionInfo(id)
	switch {
	case errors.Is(err, store.ErrNotFound) && online:
		a = store.Agent{ID: id} // connected, not stored yet
	case errors.Is(err, store.ErrNotFound):
		return errAgentNotFound
	case err != nil:
		return err
	}
	v := agentView(a, sess, online)
	s.setMember(&v, nil)
	japi.OK(w, r, v)
	return nil
}

// LabelsRequest is the body of PUT /api/agents/{id}/labels.
type LabelsRequest struct {
	Labels map[string]string `json:"labels"`
}

func (s *Server) putLabels(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id") // not Params: it would read a form body before DecodeJSON
	var req LabelsRequest
	if err := japi.DecodeJSON(r, &req, s.maxBody); err != nil {
		return err
	}
	if req.Labels == nil {
		return japi.MissingParam("labels")
	}
	if err := store.ValidateLabels(req.Labels); err != nil {
		return japi.BadParam("labels", fault.Message(err))
	}
	SetAudit(r, id, req)
	if err := s.o.Store.SetAgentLabels(r.Context(), id, req.Labels); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errAgentNotFound
		}
		return mapError(err)
	}
	japi.OK(w, r, req)
	return nil
}
