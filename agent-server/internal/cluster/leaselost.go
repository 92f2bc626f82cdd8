package cluster

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// A member whose lease has ended (docs/cluster.md, "A member whose lease
// ran out"): its claims on its agents' sessions are no longer valid and the
// others may take them, so it refuses new handshakes and, when another
// member can hold its agents, closes its sessions over a window so that
// they reconnect there. When no other member is known to be live (the
// database is down for everyone), closing would only make every agent
// reconnect in a storm to members that cannot take it either: it keeps
// them.

// leaseAnnouncement is published on NATS after every renewal, so that a
// member cut from the database still learns which others hold a lease.
type leaseAnnouncement struct {
	Member   string    `json:"member"`
	Instance string    `json:"instance"`
	Epoch    int64     `json:"epoch"`
	Until    time.Time `json:"until"`
	Draining bool      `json:"draining,omitempty"` // the member takes no new sessions (drain)
}

func (m *Member) leaseSubject() string { return "agentserver." + m.o.Name + ".leases" }

// announce tells the other members this member's lease runs until until.
// Best effort: a lost announcement only makes the others rely on their
// last listing.
func (m *Member) announce(until time.Time, epoch int64) {
	b, _ := json.Marshal(leaseAnnouncement{Member: m.o.MemberID, Instance: m.instance, Epoch: epoch, Until: until, Draining: m.Draining()})
	_ = m.nc.Publish(m.leaseSubject(), b)
}

func (m *Member) onLease(msg *nats.Msg) {
	var a leaseAnnouncement
	if json.Unmarshal(msg.Data, &a) != nil || a.Member == "" {
		return
	}
	m.noteLease(a.Member, a.Until)
	if a.Member != m.o.MemberID {
		m.mu.Lock()
		if a.Draining {
			m.drainingOthers[a.Member] = a.Instance
		} else {
			delete(m.drainingOthers, a.Member)
		}
		m.mu.Unlock()
	}
}

// noteLease records that member's lease runs until at least until.
func (m *Member) noteLease(member string, until time.Time) {
	if member == m.o.MemberID {
		return
	}
	m.mu.Lock()
	if until.After(m.others[member]) {
		m.others[member] = until
	}
	m.mu.Unlock()
}

// LeaseState says at now whether this member's lease is live and whether
// another member's is, as this member last knew (its last listing, and
// the announcements the others publish on NATS after each renewal).
func (m *Member) LeaseState(now time.Time) (held, otherLive bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	held = m.lost == nil && !now.After(m.heldUntil)
	for _, until := range m.others {
		if !now.After(until) {
			otherLive = true
			break
		}
	}
	return held, otherLive
}

// ErrLeaseLost refuses handshakes while this member's lease has ended.
var ErrLeaseLost = errors.New("this cluster member's lease has ended (the database does not take its renewals): connect to another member, or retry later")

// LeaseLostOptions configure NewLeaseLost.
type LeaseLostOptions struct {
	// State is Member.LeaseState.
	State func(now time.Time) (held, otherLive bool)
	// Sessions lists the agents with a session here; Close closes one
	// (false when it had ended already).
	Sessions func() []string
	Close    func(agent string) bool
	// Window spreads the closes: with n sessions, the i-th (in a random
	// order) closes at a random time within [i, i+1)·Window/n after the
	// lease was found ended. 0 never closes (handshakes are still refused).
	Window time.Duration
	Now    func() time.Time // time.Now when nil
	Rand   func() float64   // [0,1); math/rand/v2 when nil
	Logger *slog.Logger
	// Metrics counts the closes (agentserver_cluster_lease_lost_sessions_closed_total).
	Metrics *Metrics
}

// LeaseLost applies the rules of a member whose lease has ended: Admit for
// the hub's handshakes, Step run often (every second or so) for the
// closes. Safe for concurrent use.
type LeaseLost struct {
	o LeaseLostOptions

	mu      sync.Mutex
	lost    bool      // the lease was found ended at the last Step
	kept    bool      // logged that the sessions are kept (no other member live)
	start   time.Time // when the closes began (zero: not closing)
	plan    []planned // the closes not yet made, in time order
	refused bool      // Admit refuses
	closed  int       // sessions closed since the lease was found ended
}

type planned struct {
	agent string
	at    time.Time
}

// NewLeaseLost makes the rules; call Step to apply them.
func NewLeaseLost(o LeaseLostOptions) *LeaseLost {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &LeaseLost{o: o}
}

// Admit is nil while this member may take handshakes, ErrLeaseLost while
// its lease has ended (as of the last Step).
func (l *LeaseLost) Admit() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused {
		return ErrLeaseLost
	}
	return nil
}

// Step looks at the lease now and closes the sessions whose time came. It
// returns how many it closed.
func (l *LeaseLost) Step() int {
	now := l.o.Now()
	held, other := l.o.State(now)
	l.mu.Lock()
	switch {
	case held:
		if l.lost {
			l.o.Logger.Info("cluster: this member's lease is renewed again: agent handshakes admitted",
				"sessions_closed", l.closed)
		}
		l.closed = 0
		l.lost, l.kept, l.refused, l.start, l.plan = false, false, false, time.Time{}, nil
		l.mu.Unlock()
		return 0
	case !l.lost:
		l.lost, l.refused = true, true
	}
	if !other || l.o.Window <= 0 {
		if !l.start.IsZero() {
			l.o.Logger.Warn("cluster: no other member is live any more: the remaining agent sessions are kept",
				"left", len(l.plan))
			l.start, l.plan = time.Time{}, nil
		}
		if !l.kept {
			why := "no other member is live (the database may be down for every member)"
			if l.o.Window <= 0 {
				why = "cluster.lease_lost_close is 0"
			}
			l.o.Logger.Warn("cluster: this member's lease has ended: agent handshakes refused; its sessions are kept: "+why,
				"sessions", len(l.o.Sessions()))
			l.kept = true
		}
		l.mu.Unlock()
		return 0
	}
	if l.start.IsZero() {
		l.start, l.kept = now, false
		l.plan = l.planLocked(now)
		l.o.Logger.Warn("cluster: this member's lease has ended and another member's is live: agent handshakes refused, closing the agent sessions so that they reconnect elsewhere",
			"sessions", len(l.plan), "over", l.o.Window)
	}
	due, rest := takeDue(l.plan, now)
	l.plan = rest
	l.mu.Unlock()
	n := closeEach(due, l.o.Close, l.o.Metrics.leaseLostClosed)
	l.mu.Lock()
	l.closed += n
	l.mu.Unlock()
	return n
}

// planLocked spreads the sessions now over the window (spread).
func (l *LeaseLost) planLocked(now time.Time) []planned {
	return spread(l.o.Sessions(), now, l.o.Window, l.o.Rand)
}

// takeDue splits off the planned closes due at now (plan is in time
// order).
func takeDue(plan []planned, now time.Time) (due []string, rest []planned) {
	for len(plan) > 0 && !plan[0].at.After(now) {
		due = append(due, plan[0].agent)
		plan = plan[1:]
	}
	return due, plan
}

// closeEach closes the sessions of agents and counts those it closed.
func closeEach(agents []string, closeFn func(string) bool, closed prometheus.Counter) int {
	n := 0
	for _, a := range agents {
		if closeFn(a) {
			n++
			closed.Inc()
		}
	}
	return n
}

// spread plans the closes of agents from now over window, in a random
// order, each at a random time within its own slot [i, i+1)·window/n: at
// most about two closes per slot, all within the window. Shared by the
// lease-lost closes and the drain.
func spread(agents []string, now time.Time, window time.Duration, rnd func() float64) []planned {
	rand.Shuffle(len(agents), func(i, j int) { agents[i], agents[j] = agents[j], agents[i] })
	out := make([]planned, len(agents))
	if len(agents) == 0 {
		return out
	}
	slot := window / time.Duration(len(agents))
	for i, a := range agents {
		out[i] = planned{agent: a, at: now.Add(time.Duration(i)*slot + time.Duration(rnd()*float64(slot)))}
	}
	return out
}
