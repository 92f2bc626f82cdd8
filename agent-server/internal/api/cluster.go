package api

import (
	"context"
	"net/http"
	"time"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/cluster"
	"github.com/agentfleet/agent-server/internal/store"
)

// Cluster is what the API shows of the cluster this server is a member of
// (*cluster.Member is one); nil for a single server.
type Cluster interface {
	// Name is the cluster's name, ID this server's member id.
	Name() string
	ID() string
	// NATSState is the state of the NATS connection (connected, …).
	NATSState() string
	// Members lists the cluster's members.
	Members(ctx context.Context) ([]cluster.Status, error)
	// Ready says what keeps this member from serving (nil: nothing).
	Ready() error
	// Owner returns the live member holding agent id's session (false:
	// none), from a short cache; ForgetOwner drops the cached answer.
	Owner(ctx context.Context, id string) (store.AgentSession, bool, error)
	ForgetOwner(id string)
	// TaskMember returns the live member owning task id and its advertised
	// address (false: unknown, unowned, or its owner's lease ended), from
	// a short cache; ForgetTaskMember drops the cached answer.
	TaskMember(ctx context.Context, id string) (member, advertise string, ok bool, err error)
	ForgetTaskMember(id string)
	// Owners returns the live sessions of ids (all when ids is nil).
	Owners(ctx context.Context, ids []string) (map[string]store.AgentSession, error)
}

// ClusterInfo is the payload of GET /api/cluster.
type ClusterInfo struct {
	// Enabled is false for a single server, which lists itself alone.
	Enabled bool   `json:"enabled"`
	Name    string `json:"name,omitempty"`
	Self    string `json:"self"`           // this server's member id (its id when single)
	NATS    string `json:"nats,omitempty"` // this server's NATS connection
	// Problem is what keeps this server from serving as a member, if
	// anything (what /readyz answers).
	Problem string          `json:"problem,omitempty"`
	Members []ClusterMember `json:"members"`
}

// ClusterMember is one member in ClusterInfo.
type ClusterMember struct {
	ID        string `json:"id"`
	Advertise string `json:"advertise,omitempty"`
	Version   string `json:"version"`
	// State: live (its lease runs) or expired (it stopped renewing; removed
	// after cluster.member_grace).
	State      string     `json:"state"`
	Self       bool       `json:"self"`
	Epoch      int64      `json:"epoch,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	RenewedAt  *time.Time `json:"renewed_at,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	// Sessions is the agents connected to it at its last renewal (its
	// load); left out for tokens limited by a label selector, which see
	// only the agents they reach.
	Sessions *int `json:"sessions,omitempty"`
	// Draining: it takes no new agents and is closing its sessions (as this
	// member knows: its own state, the others' announcements).
	Draining bool `json:"draining"`
}

func (s *Server) clusterInfo(w http.ResponseWriter, r *http.Request) error {
	id, _ := IdentityFrom(r.Context())
	load := func(n int) *int {
		if id.Limited() {
			return nil
		}
		return &n
	}
	c := s.o.Cluster
	if c == nil {
		japi.OK(w, r, ClusterInfo{Self: s.o.Config.ID, Members: []ClusterMember{{
			ID: s.o.Config.ID, Version: s.o.Version, State: cluster.StateLive, Self: true,
			StartedAt: s.started, Sessions: load(s.o.Hub.Count()),
		}}})
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	list, err := c.Members(ctx)
	if err != nil {
		s.log.Warn("cluster members", "err", err)
		return &japi.Error{Code: http.StatusServiceUnavailable, Msg: "cluster members unavailable: the store does not answer", Err: err}
	}
	out := ClusterInfo{Enabled: true, Name: c.Name(), Self: c.ID(), NATS: c.NATSState(), Members: make([]ClusterMember, len(list))}
	if err := c.Ready(); err != nil {
		out.Problem = err.Error()
	}
	for i, m := range list {
		out.Members[i] = ClusterMember{ID: m.ID, Advertise: m.Advertise, Version: m.Version, State: m.State, Self: m.Self,
			Epoch: m.Epoch, StartedAt: m.StartedAt, RenewedAt: &m.RenewedAt, LeaseUntil: &m.LeaseUntil, Sessions: load(m.Sessions),
			Draining: m.Draining}
	}
	japi.OK(w, r, out)
	return nil
}

// DrainStatus is the payload of POST /api/cluster/drain.
type DrainStatus struct {
	Member    string    `json:"member"`
	StartedAt time.Time `json:"started_at"`
	// Period is the time the sessions' closes are spread over (Go duration).
	Period string `json:"period"`
	// Already: the member was draining already (the first drain's period
	// stays).
	Already bool `json:"already"`
	// Sessions is the agent sessions still here when the call returned.
	Sessions int `json:"sessions"`
	// TasksHandedOver is the tasks whose lease this call ended so that the
	// other members take them over.
	TasksHandedOver int64 `json:"tasks_handed_over"`
}

// maxDrainPeriod bounds the period a drain may be asked with.
const maxDrainPeriod = time.Hour

func (s *Server) clusterDrain(w http.ResponseWriter, r *http.Request) error {
	if s.o.Drain == nil {
		return &japi.Error{Code: http.StatusConflict, Msg: "this server is not a cluster member: there is nothing to drain to"}
	}
	var period time.Duration
	if v := r.URL.Query().Get("period"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxDrainPeriod {
			return &japi.Error{Code: http.StatusBadRequest, Msg: "period: want a duration between 0s and 1h (0: cluster.drain_period, or 30s)"}
		}
		period = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st, err := s.o.Drain(ctx, period)
	if err != nil {
		return err
	}
	japi.OK(w, r, st)
	return nil
}
