package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/agentfleet/agent-server/internal/store"
)

// Session ownership (docs/cluster.md, "Session ownership with a lease and
// fencing"): the member that accepts an agent's handshake takes the
// agent's row of agent_sessions with the next fencing token; the row is
// valid while the member's own row is live with that instance, so one
// lease per member covers all its agents.

// ErrHeld is the error of Claim when a live member holds the agent and
// the agent did not prove its secret (the handshake refuses it with
// "agent id conflict", as a single server does).
var ErrHeld = errors.New("agent session held by another member")

// ReleaseTimeout bounds how long Claim waits for the holder to close the
// session of an agent that reconnected elsewhere.
const ReleaseTimeout = 5 * time.Second

// ownerTTL is how long Owner trusts a row it read: a call for an agent that
// just moved may go to its previous member once, which answers 503 with
// Retry-After (it does not forward again).
const ownerTTL = time.Second

// maxOwnerCache bounds the owners cached; past it the cache starts over.
const maxOwnerCache = 100000

type cachedOwner struct {
	s     store.AgentSession
	ok    bool
	until time.Time
}

// owners caches Owner's answers.
type owners struct {
	mu sync.Mutex
	m  map[string]cachedOwner
}

func (o *owners) get(id string, now time.Time) (cachedOwner, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.m[id]
	if !ok || now.After(c.until) {
		return cachedOwner{}, false
	}
	return c, true
}

func (o *owners) put(id string, c cachedOwner) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil || len(o.m) >= maxOwnerCache {
		o.m = make(map[string]cachedOwner)
	}
	o.m[id] = c
}

func (o *owners) forget(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, id)
}

// Claim takes agent id's session for this member and returns its fencing
// token. An agent held by another live member is taken only when proven
// (it proved its secret, so the live session is stale): the holder is
// asked to close it (NATS request, bounded by ReleaseTimeout; an
// unreachable holder does not keep the agent out), then the row is taken
// by force with the next token, which the old holder's release cannot
// clear. Unproven: ErrHeld.
func (m *Member) Claim(ctx context.Context, id string, proven bool) (int64, error) {
	now := m.o.Now()
	a := store.AgentSession{AgentID: id, Member: m.o.MemberID, Instance: m.instance, ConnectedAt: now}
	got, err := m.o.Store.ClaimAgentSession(ctx, m.o.Name, a, now, false)
	if errors.Is(err, store.ErrConflict) {
		if !proven {
			return 0, fmt.Errorf("%w: %s holds agent %s", ErrHeld, got.Member, id)
		}
		if got.Member != "" && got.Member != m.o.MemberID {
			if rerr := m.askRelease(ctx, got); rerr != nil {
				m.log.Warn("cluster: the agent's previous member did not release its session: taken over anyway",
					"agent", id, "member", got.Member, "err", rerr)
			}
		}
		got, err = m.o.Store.ClaimAgentSession(ctx, m.o.Name, a, m.o.Now(), true)
	}
	if err != nil {
		return 0, err
	}
	m.owned.forget(id)
	return got.Token, nil
}

// Release clears agent id's row when this member still holds it with
// token (its session ended); a row another member or a later session of
// this one took is left alone.
func (m *Member) Release(ctx context.Context, id string, token int64) error {
	err := m.o.Store.ReleaseAgentSession(ctx, id, m.o.MemberID, m.instance, token)
	m.owned.forget(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Owner returns the live member holding agent id's session (false when
// none does), from a cache of ownerTTL.
func (m *Member) Owner(ctx context.Context, id string) (store.AgentSession, bool, error) {
	now := m.o.Now()
	if c, ok := m.owned.get(id, now); ok {
		return c.s, c.ok, nil
	}
	list, err := m.o.Store.AgentSessionOwners(ctx, m.o.Name, []string{id}, now)
	if err != nil {
		return store.AgentSession{}, false, err
	}
	s, ok := list[id]
	m.owned.put(id, cachedOwner{s: s, ok: ok, until: now.Add(ownerTTL)})
	return s, ok, nil
}

// ForgetOwner drops the cached owner of agent id (a forwarded call found
// it gone).
func (m *Member) ForgetOwner(id string) { m.owned.forget(id) }

// TaskMember returns the live member owning task id and its advertised
// address (false when the task is unknown, unowned, or its owner's lease
// has ended: it awaits a takeover), from a cache of ownerTTL.
func (m *Member) TaskMember(ctx context.Context, id string) (member, advertise string, ok bool, err error) {
	now := m.o.Now()
	if c, ok := m.tasks.get(id, now); ok {
		return c.s.Member, c.s.Advertise, c.ok, nil
	}
	member, advertise, ok, err = m.o.Store.LiveTaskOwner(ctx, m.o.Name, id, now)
	if err != nil {
		return "", "", false, err
	}
	m.tasks.put(id, cachedOwner{s: store.AgentSession{Member: member, Advertise: advertise}, ok: ok, until: now.Add(ownerTTL)})
	return member, advertise, ok, nil
}

// ForgetTaskMember drops the cached owner of task id.
func (m *Member) ForgetTaskMember(id string) { m.tasks.forget(id) }

// Owners returns the live sessions of ids (all of them when ids is nil)
// by agent id, read from the store.
func (m *Member) Owners(ctx context.Context, ids []string) (map[string]store.AgentSession, error) {
	return m.o.Store.AgentSessionOwners(ctx, m.o.Name, ids, m.o.Now())
}

// releaseRequest is the payload of a release request.
type releaseRequest struct {
	Agent string `json:"agent"`
	Token int64  `json:"token"`
}

func (m *Member) releaseSubject(member string) string {
	return "agentserver." + m.o.Name + ".member." + member + ".release"
}

// askRelease asks the member holding s to close it and waits for its
// answer, at most ReleaseTimeout.
func (m *Member) askRelease(ctx context.Context, s store.AgentSession) error {
	ctx, cancel := context.WithTimeout(ctx, ReleaseTimeout)
	defer cancel()
	b, _ := json.Marshal(releaseRequest{Agent: s.AgentID, Token: s.Token})
	reply, err := m.nc.RequestWithContext(ctx, m.releaseSubject(s.Member), b)
	if err != nil {
		return err
	}
	if len(reply.Data) > 0 && string(reply.Data) != "ok" {
		return errors.New(string(reply.Data))
	}
	return nil
}

// ServeReleases answers the release requests of the other members with
// close(agent, token), which ends this member's session of the agent if
// it is the one holding token (or an older one), and returns once it has
// ended. Requests are served concurrently (a takeover of many agents at
// once must not wait for each close in turn). It returns the
// subscription's stop, which waits for the requests being served.
func (m *Member) ServeReleases(closeSession func(agent string, token int64)) (stop func(), err error) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		stopped bool // no request is taken on once stop began (wg.Add after Wait)
	)
	sub, err := m.nc.Subscribe(m.releaseSubject(m.o.MemberID), func(msg *nats.Msg) {
		var r releaseRequest
		if err := json.Unmarshal(msg.Data, &r); err != nil || r.Agent == "" {
			_ = msg.Respond([]byte("bad release request"))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return // the requester takes the agent when its wait ends
		}
		wg.Go(func() {
			m.log.Info("cluster: releasing an agent that connected to another member", "agent", r.Agent)
			closeSession(r.Agent, r.Token)
			m.owned.forget(r.Agent)
			_ = msg.Respond([]byte("ok"))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribe to release requests: %w", err)
	}
	return func() {
		_ = sub.Unsubscribe()
		mu.Lock()
		stopped = true
		mu.Unlock()
		wg.Wait()
	}, nil
}
