package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/agentfleet/agent-server/internal/api"
	"github.com/agentfleet/agent-server/internal/cluster"
	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/lockfile"
	"github.com/agentfleet/agent-server/internal/store"
)

// LockFile is the lock file in the data dir that keeps it to one server.
const LockFile = "agent-server.lock"

// lockDataDir takes the data dir's lock before anything in it is opened:
// two servers on one data dir would corrupt its SQLite database, package
// repository and log segments. The lock goes with the process.
func (s *Server) lockDataDir() error {
	l, err := lockfile.Acquire(filepath.Join(s.cfg.DataDir, LockFile))
	if errors.Is(err, lockfile.ErrLocked) {
		return fmt.Errorf("data dir %s is in use by another agent-server: %w (one data dir serves one server; "+
			"give each server of a cluster its own)", s.cfg.DataDir, err)
	}
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	s.closers = append(s.closers, func() {
		if err := l.Release(); err != nil {
			s.log.Error("release the data dir lock", "err", err)
		}
	})
	return nil
}

// newCluster makes this server a cluster member when cluster.* says so
// (config.CheckCluster refused SQLite already); New joins once the
// listener is bound.
func (s *Server) newCluster(st store.Store, m *cluster.Metrics) error {
	k := s.cfg.Cluster
	if !k.Enabled() {
		return nil
	}
	cs, ok := st.(store.ClusterStore)
	if !ok {
		return fmt.Errorf("cluster: the %s store keeps no cluster membership", s.cfg.Store.Driver)
	}
	member, err := cluster.New(cluster.Options{
		Name: k.Name, MemberID: s.cfg.MemberID(), Advertise: k.Advertise, Version: s.o.Version, Store: cs,
		NATS:  cluster.NATS{URLs: k.NATSURL, Creds: k.NATSCreds, TokenFile: k.NATSTokenFile, TLSCA: k.NATSTLSCA},
		Lease: time.Duration(k.Lease), Grace: time.Duration(k.MemberGrace),
		Load: s.hub.Count, Logger: s.log.With("component", "cluster"), Metrics: m,
		Rejoined: s.reclaimSessions,
	})
	if err != nil {
		return err
	}
	s.member = member
	s.leaseLost = cluster.NewLeaseLost(cluster.LeaseLostOptions{
		State: member.LeaseState, Sessions: s.sessionIDs, Close: s.closeLeaseLost,
		Window: time.Duration(k.LeaseLostClose), Logger: s.log.With("component", "cluster"), Metrics: m,
	})
	s.drain = cluster.NewDrain(cluster.DrainOptions{
		Sessions: s.sessionIDs, Close: s.closeDraining,
		OtherLive: func(now time.Time) bool { _, other := member.LeaseState(now); return other },
		Logger:    s.log.With("component", "cluster"), Metrics: m,
	})
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := member.Close(ctx); err != nil {
			s.log.Warn("leave the cluster", "err", err)
		}
	})
	stop, err := member.ServeReleases(func(agent string, token int64) {
		// The agent proved its secret to another member: this session of it
		// (if it is the one the other member saw, or older) is stale.
		if sess, ok := s.hub.Session(agent); ok && sess.ClaimToken() <= token {
			sess.Replaced(cluster.ReleaseTimeout)
		}
	})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, stop)
	return nil
}

// forwardTLS is the TLS config of the calls forwarded to other members:
// their certificates verified against the cluster.tls_ca bundle, or the
// system roots (nil) when it is not set.
func forwardTLS(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := config.CertPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls_ca: %w", err)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// claimSession is the hub's Claim on a cluster member: the agent's row of
// agent_sessions, taken with the next fencing token.
func (s *Server) claimSession(ctx context.Context, sess *hub.Session, proven bool) (int64, error) {
	if s.member == nil {
		return 0, errors.New("cluster membership not set up")
	}
	tok, err := s.member.Claim(ctx, sess.ID(), proven)
	if errors.Is(err, cluster.ErrHeld) {
		return 0, fmt.Errorf("%w: %w", hub.ErrHeldElsewhere, err)
	}
	return tok, err
}

// releaseSession clears the agent's row of agent_sessions when its
// session here ended and nothing took it since (the token says).
func (s *Server) releaseSession(sess *hub.Session) {
	if s.member == nil || sess.ClaimToken() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.member.Release(ctx, sess.ID(), sess.ClaimToken()); err != nil {
		// Harmless but visible: the row names this member until it leaves or
		// the agent connects again (its next claim takes the row).
		s.log.Warn("cluster: clear the session of a disconnected agent", "agent", sess.ID(), "err", err)
	}
}

// reclaimSessions takes back the sessions of the agents still connected
// here after this member joined again (its row had been removed, and the
// other members released its sessions). An agent another member took
// meanwhile has its session here closed: it lives elsewhere now.
func (s *Server) reclaimSessions(ctx context.Context) error {
	var taken, lost, failed int
	var last error
	for _, info := range s.hub.Sessions() {
		sess, ok := s.hub.Session(info.ID)
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		tok, err := s.member.Claim(cctx, sess.ID(), false)
		cancel()
		switch {
		case errors.Is(err, cluster.ErrHeld):
			lost++
			sess.Replaced(cluster.ReleaseTimeout)
		case err != nil:
			failed, last = failed+1, err
		default:
			taken++
			sess.SetClaimToken(tok)
			if cur, ok := s.hub.Session(sess.ID()); !ok || cur != sess {
				s.releaseSession(sess) // it ended meanwhile, releasing the old token
			}
		}
	}
	s.log.Info("cluster: sessions taken back after joining again", "taken", taken, "closed_held_elsewhere", lost, "failed", failed)
	if failed > 0 {
		return fmt.Errorf("%d sessions not taken back: %w", failed, last)
	}
	return nil
}

// admitHandshake is the hub's Admit on a cluster member: no handshake
// while this member's lease has ended (its claims would not hold).
func (s *Server) admitHandshake() error {
	if s.leaseLost == nil {
		return nil
	}
	return s.leaseLost.Admit()
}

// runLeaseLost applies the rules of a member whose lease ended every
// leaseLostStep until ctx ends.
func (s *Server) runLeaseLost(ctx context.Context) {
	t := time.NewTicker(leaseLostStep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.leaseLost.Step()
		s.drain.Step()
	}
}

// leaseLostStep is how often the lease is looked at for LeaseLost: the
// closes of a window come in steps of it.
const leaseLostStep = 250 * time.Millisecond

func (s *Server) sessionIDs() []string {
	list := s.hub.Sessions()
	ids := make([]string, len(list))
	for i, x := range list {
		ids[i] = x.ID
	}
	return ids
}

func (s *Server) closeLeaseLost(agent string) bool {
	sess, ok := s.hub.Session(agent)
	if !ok {
		return false
	}
	sess.LeaseLost()
	return true
}

func (s *Server) closeDraining(agent string) bool {
	sess, ok := s.hub.Session(agent)
	if !ok {
		return false
	}
	sess.Drain()
	return true
}

// redirectHandshake is the hub's Redirect on a cluster member: a draining
// member sends every agent to the least loaded live member, one over its
// share of the fleet by more than cluster.Band (and cluster.Slack sessions)
// sends the new ones there (docs/cluster.md, "Balancing and drain").
func (s *Server) redirectHandshake(string) []string {
	if s.member == nil {
		return nil
	}
	draining := s.member.Draining()
	to, ok := cluster.Balance(s.member.ID(), s.hub.Count(), draining, s.member.Loads(time.Now()), cluster.Band, cluster.Slack)
	if !ok {
		return nil
	}
	addr := cluster.RedirectAddress(to.Advertise)
	if addr == "" {
		return nil
	}
	why := cluster.RedirectBalance
	if draining {
		why = cluster.RedirectDrain
	}
	s.member.Redirected(to.ID, why)
	return []string{addr}
}

// ErrNotClusterMember refuses a drain of a single server.
var ErrNotClusterMember = errors.New("this server is not a cluster member: there is nothing to drain to")

// DrainResult is what Drain did.
type DrainResult struct {
	Started   time.Time     `json:"started_at"`
	Period    time.Duration `json:"-"`
	Already   bool          `json:"already"`  // it was draining already (period of the first drain)
	Sessions  int           `json:"sessions"` // agent sessions here now
	TasksMove int64         `json:"tasks_handed_over"`
}

// Drain makes this member drain (docs/cluster.md, "Balancing and drain"):
// marked draining (handshakes redirected to the others, announced and
// listed), its tasks handed over at once, its sessions closed spread over
// period (cluster.drain_period when 0, else 30 s). Draining is one way: a
// member drains until it stops. A second call changes nothing and says so.
func (s *Server) Drain(ctx context.Context, period time.Duration) (DrainResult, error) {
	if s.member == nil {
		return DrainResult{}, ErrNotClusterMember
	}
	if period <= 0 {
		period = time.Duration(s.cfg.Cluster.DrainPeriod)
	}
	if period <= 0 {
		period = defaultDrainPeriod
	}
	s.member.SetDraining()
	r := DrainResult{Period: period, Already: !s.drain.Start(period)}
	r.Started, _ = s.drain.Started()
	if !r.Already {
		n, err := s.member.HandOverTasks(ctx)
		if err != nil {
			// The renewals no longer move their lease: they are taken over
			// within a lease anyway.
			s.log.Warn("cluster: drain: hand the tasks over", "err", err)
		} else {
			s.log.Info("cluster: drain: tasks handed over to the other members", "tasks", n)
		}
		r.TasksMove = n
	}
	r.Sessions = s.hub.Count()
	return r, nil
}

// defaultDrainPeriod spreads the closes of a drain asked without a period
// while cluster.drain_period is 0.
const defaultDrainPeriod = 30 * time.Second

// drainOnStop drains a member that is asked to stop, when
// cluster.drain_period is set: it returns once its sessions are gone or
// the period and a few seconds have passed (or the listener failed:
// that error).
func (s *Server) drainOnStop(errc <-chan error) error {
	period := time.Duration(s.cfg.Cluster.DrainPeriod)
	if s.member == nil || period <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	r, err := s.Drain(ctx, period)
	cancel()
	if err != nil {
		return nil
	}
	deadline := time.NewTimer(time.Until(r.Started.Add(r.Period + drainStopGrace)))
	defer deadline.Stop()
	tick := time.NewTicker(leaseLostStep)
	defer tick.Stop()
	for s.hub.Count() > 0 {
		select {
		case err := <-errc:
			return err
		case <-deadline.C:
			s.log.Warn("cluster: drain: stopping with agent sessions left", "sessions", s.hub.Count())
			return nil
		case <-tick.C:
		}
	}
	s.log.Info("cluster: drained: no agent session left")
	return nil
}

// drainStopGrace is how long after its period a drain on stop waits for
// the last sessions to end.
const drainStopGrace = 5 * time.Second

// drainStatus is the API's Drain.
func (s *Server) drainStatus(ctx context.Context, period time.Duration) (api.DrainStatus, error) {
	r, err := s.Drain(ctx, period)
	if err != nil {
		return api.DrainStatus{}, err
	}
	return api.DrainStatus{Member: s.member.ID(), StartedAt: r.Started, Period: r.Period.String(), Already: r.Already,
		Sessions: r.Sessions, TasksHandedOver: r.TasksMove}, nil
}
