package server

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/agentfleet/agent-server/internal/store"
)

// agentWriter is the part of the store the recorder writes to.
type agentWriter interface {
	UpsertAgent(ctx context.Context, a store.Agent) error
	UpsertAgents(ctx context.Context, as []store.Agent) error
	TouchAgents(ctx context.Context, ids []string, t time.Time) error
}

// recorder writes what the server learns about agents to the store off the
// hub's reader goroutines: the facts of each handshake (coalesced per agent:
// only the latest is written) as soon as the writer is free, and last_seen of
// every connected agent, plus of those that just left, every interval. The
// pending set is bounded by the number of agents. One goroutine (run) owns
// the writes; upsert and touch only record and wake it.
type recorder struct {
	st       agentWriter
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	upserts map[string]store.Agent
	touched map[string]struct{}
	wake    chan struct{}
}

func newRecorder(st agentWriter, log *slog.Logger, interval time.Duration) *recorder {
	return &recorder{st: st, log: log, interval: interval,
		upserts: map[string]store.Agent{}, touched: map[string]struct{}{}, wake: make(chan struct{}, 1)}
}

func (r *recorder) upsert(a store.Agent) {
	r.mu.Lock()
	r.upserts[a.ID] = a
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *recorder) touch(id string) {
	r.mu.Lock()
	r.touched[id] = struct{}{}
	r.mu.Unlock()
}

// run writes until ctx is done, then writes what is left (and last_seen of
// the agents online then) and returns.
func (r *recorder) run(ctx context.Context, online func() []string) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.wake:
			r.flush(false, nil)
		case <-t.C:
			r.flush(true, online())
		case <-ctx.Done():
			r.flush(true, online())
			return
		}
	}
}

func (r *recorder) flush(touch bool, online []string) {
	r.mu.Lock()
	ups := r.upserts
	r.upserts = map[string]store.Agent{}
	var ids []string
	if touch {
		for id := range r.touched {
			ids = append(ids, id)
		}
		r.touched = map[string]struct{}{}
	}
	r.mu.Unlock()

	// A write that fails is logged and not retried: the next handshake or
	// interval brings fresh data.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.upsertAll(ctx, ups)
	if !touch {
		return
	}
	ids = append(ids, online...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	now := time.Now()
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		if err := r.st.TouchAgents(ctx, ids[:n], now); err != nil {
			r.log.Error("store agents last_seen", "agents", n, "err", err)
		}
		ids = ids[n:]
	}
}

// upsertAll writes the agents in batches of one transaction each; when a
// batch fails (one agent's bad data fails all of it), its agents are written
// one by one so that the others still get through.
func (r *recorder) upsertAll(ctx context.Context, ups map[string]store.Agent) {
	const batch = 2000
	as := slices.Collect(maps.Values(ups))
	for chunk := range slices.Chunk(as, batch) {
		if err := r.st.UpsertAgents(ctx, chunk); err == nil {
			continue
		}
		for _, a := range chunk {
			if err := r.st.UpsertAgent(ctx, a); err != nil {
				r.log.Error("store agent", "agent", a.ID, "err", err)
			}
		}
	}
}
