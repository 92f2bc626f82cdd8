// Command agent-sim simulates many agents in one process for benchmarks and
// soak tests (see internal/sim), or, with -serve, runs a bare hub and
// reports its RSS, heap, goroutines and CPU, to measure the hub alone.
//
//	agent-sim -serve 127.0.0.1:13081 -report 5s
//	agent-sim -server ws://127.0.0.1:13081/ws/agent -n 15000 -concurrency 200 -duration 2m
//
// Several processes can dial together (-start-at) and stop once every
// agent has dialed (-exit-connected); the final "window:" line gives the
// times of the first and last successful handshake, so .ci/bench-scale can
// merge the processes' windows into the rate the server saw.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only in -serve mode, on its own listener
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/sim"
	"github.com/agentfleet/libagent/protocol"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "agent-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		server      = flag.String("server", "ws://127.0.0.1:13081/ws/agent", "server WebSocket URL (or host:port)")
		n           = flag.Int("n", 100, "number of simulated agents")
		concurrency = flag.Int("concurrency", 100, "parallel dialers")
		typ         = flag.String("type", "example-agent", "agent type (come.name)")
		token       = flag.String("token", "", "enrollment token (Authorization: Bearer)")
		idPrefix    = flag.String("id-prefix", "", "agent ids are <prefix><6-digit index>; empty: the server assigns ids")
		v1          = flag.Bool("v1", false, "speak plain v1: announce no capabilities (a server needs allow_legacy_agents for them)")
		duration    = flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
		ping        = flag.Duration("ping", 10*time.Second, "keepalive ping interval")
		reconnect   = flag.Bool("reconnect", true, "redial agents whose connection drops")
		report      = flag.Duration("report", 5*time.Second, "progress report interval")
		serve       = flag.String("serve", "", "run a bare hub on this address instead of agents (measurement mode)")
		pprofAddr   = flag.String("pprof", "", "with -serve: net/http/pprof on this address")
		limit       = flag.Float64("connect-limit", 0, "with -serve: handshakes per second (0: unlimited)")
		startAt     = flag.Int64("start-at", 0, "start dialing at this wall-clock time, in unix milliseconds (0: at once)")
		exitConn    = flag.Bool("exit-connected", false, "stop once every agent has dialed once (handshake benchmarks)")
		sourceAddrs = flag.Int("source-addrs", 16, "dial a server on 127.0.0.1 from this many loopback addresses, 127.0.0.1 to 127.0.0.N, in turn (Linux)")
		cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile of this process to this file (diagnosis)")
	)
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *serve != "" {
		return serveHub(ctx, log, *serve, *pprofAddr, *token, *limit, *report)
	}

	url := *server
	if !strings.Contains(url, "://") {
		url = "ws://" + url + "/ws/agent"
	}
	cfg := sim.Config{
		URL: url, N: *n, Concurrency: *concurrency, Type: *typ, Token: *token,
		IDPrefix: *idPrefix, V1: *v1, Ping: *ping, Reconnect: *reconnect, Logger: log,
		SourceAddrs: *sourceAddrs,
	}
	if *startAt > 0 {
		cfg.StartAt = time.UnixMilli(*startAt)
	}
	s := sim.New(cfg)
	var cancel context.CancelFunc
	ctx, cancel = context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(ctx) }()
	tk := time.NewTicker(*report)
	defer tk.Stop()
	var allDialed <-chan time.Time // polled only with -exit-connected
	if *exitConn {
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		allDialed = poll.C
	}
	var last sim.Stats
	lastT := start
	for {
		select {
		case err := <-done:
			st := s.Stats()
			fmt.Printf("final: agents=%d handshakes=%d failures=%d disconnects=%d requests=%d elapsed=%s\n",
				*n, st.Handshakes, st.Failures, st.Disconnects, st.Requests, time.Since(start).Round(time.Millisecond))
			if st.FirstAllTook > 0 {
				fmt.Printf("first connect of all %d agents: %s → %.0f handshakes/s\n",
					*n, st.FirstAllTook.Round(time.Millisecond), float64(*n)/st.FirstAllTook.Seconds())
			}
			if !st.FirstOK.IsZero() {
				fmt.Printf("window: first_ok_ms=%d last_ok_ms=%d handshakes=%d failures=%d\n",
					st.FirstOK.UnixMilli(), st.LastOK.UnixMilli(), st.Handshakes, st.Failures)
			}
			if e := s.LastError(); e != nil {
				fmt.Printf("last error: %v\n", e)
			}
			return err
		case <-allDialed:
			if s.Stats().FirstAllTook > 0 {
				cancel()
				allDialed = nil
			}
		case now := <-tk.C:
			st := s.Stats()
			rate := float64(st.Handshakes-last.Handshakes) / now.Sub(lastT).Seconds()
			fmt.Printf("%6.1fs connected=%d handshakes=%d (%.0f/s) failures=%d disconnects=%d requests=%d\n",
				now.Sub(start).Seconds(), st.Connected, st.Handshakes, rate, st.Failures, st.Disconnects, st.Requests)
			last, lastT = st, now
		}
	}
}

// serveHub runs a hub alone and reports what the process costs.
func serveHub(ctx context.Context, log *slog.Logger, addr, pprofAddr, token string, limit float64, every time.Duration) error {
	store := hub.NewMemStore()
	opts := hub.Options{Logger: log, Secrets: store, Acks: store, ConnectLimit: limit, AllowLegacy: true}
	if token != "" {
		opts.AgentTokens = []string{token}
	}
	h, err := hub.New(opts)
	if err != nil {
		return err
	}
	h.HandleJournal(func(*hub.Session, *protocol.Msg) error { return nil })
	mux := http.NewServeMux()
	mux.Handle("/ws/agent", h)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	if pprofAddr != "" {
		ps := &http.Server{Addr: pprofAddr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ps.ListenAndServe() }()
		defer ps.Close()
	}
	base := sample()
	fmt.Printf("hub on %s: baseline rss=%.1fMiB heap=%.1fMiB goroutines=%d\n",
		addr, mib(base.rss), mib(base.heap), base.goroutines)
	tk := time.NewTicker(every)
	defer tk.Stop()
	prev := base
	for {
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return h.Shutdown(sctx)
		case <-tk.C:
			cur := sample()
			n := h.Count()
			line := fmt.Sprintf("agents=%d rss=%.1fMiB heap=%.1fMiB stacks=%.1fMiB goroutines=%d cpu=%.2f%%",
				n, mib(cur.rss), mib(cur.heap), mib(cur.stack), cur.goroutines, cpuPercent(prev, cur))
			if n > 0 {
				per := func(a, b int64) float64 { return float64(a-b) / float64(n) }
				line += fmt.Sprintf(" per agent: rss=%.0fB heap=%.0fB stack=%.0fB",
					per(cur.rss, base.rss), per(cur.heap, base.heap), per(cur.stack, base.stack))
			}
			fmt.Println(line)
			prev = cur
		}
	}
}

type usage struct {
	at         time.Time
	rss        int64 // bytes; -1 when unknown
	cpu        time.Duration
	heap       int64 // heap bytes in use (HeapInuse), garbage included
	stack      int64 // goroutine stacks (StackInuse)
	goroutines int
}

func sample() usage {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := usage{at: time.Now(), heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse), goroutines: runtime.NumGoroutine()}
	u.rss, u.cpu = processUsage()
	return u
}

func cpuPercent(a, b usage) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.cpu-a.cpu) / float64(wall)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
