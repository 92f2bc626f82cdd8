// Command idlecost measures what a connected, idle agent costs: it starts
// an in-process agenttest server, runs a minimal libagent agent as a child
// process (this same binary), lets it connect and settle, then reports the
// child's resident memory and CPU use over the measuring window.
//
//	go run ./internal/idlecost                 # 60 s window, production intervals
//	go run ./internal/idlecost -window 10s     # quicker look
//
// The targets of the project (RSS ≤ 12 MiB, CPU ≤ 0.1 % of one core) are
// checked; the exit status is 1 when one is missed. Linux only in practice
// (it reads the child through gopsutil, which works elsewhere too).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/process"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

const childEnv = "IDLECOST_SERVER"

func main() {
	if addr := os.Getenv(childEnv); addr != "" {
		os.Exit(child(addr))
	}
	window := flag.Duration("window", 60*time.Second, "measuring window")
	settle := flag.Duration("settle", 5*time.Second, "time after the handshake before measuring")
	maxRSS := flag.Float64("max-rss-mib", 12, "RSS target, MiB")
	maxCPU := flag.Float64("max-cpu", 0.1, "CPU target, percent of one core")
	flag.Parse()
	if err := parent(*window, *settle, *maxRSS, *maxCPU); err != nil {
		fmt.Fprintln(os.Stderr, "idlecost:", err)
		os.Exit(1)
	}
}

// child runs a minimal agent with production settings against addr.
func child(addr string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "idlecost-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg := &libagent.Basic{}
	*cfg = libagent.DefaultBasic()
	cfg.Server = addr
	err = libagent.Run(ctx, &libagent.Agent{
		Name:   "idle-agent",
		Config: cfg,
		Setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeBar})
			})
			return nil
		},
	}, libagent.Options{
		StatePath:  filepath.Join(dir, "agent.state"),
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		SkipLimits: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func parent(window, settle time.Duration, maxRSS, maxCPU float64) error {
	srv, err := agenttest.Start(agenttest.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+srv.Addr())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		return fmt.Errorf("agent did not connect: %w", err)
	}
	// One round trip, so the agent has done real work before idling.
	tid, err := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
	if err == nil {
		_, err = srv.Await(ctx, tid)
	}
	if err != nil {
		return fmt.Errorf("round trip: %w", err)
	}
	time.Sleep(settle)

	p, err := process.NewProcess(int32(cmd.Process.Pid))
	if err != nil {
		return err
	}
	t0, err := p.Times()
	if err != nil {
		return err
	}
	start := time.Now()
	var peak uint64
	for time.Since(start) < window {
		time.Sleep(min(time.Second, window-time.Since(start)))
		if mi, err := p.MemoryInfo(); err == nil && mi.RSS > peak {
			peak = mi.RSS
		}
	}
	t1, err := p.Times()
	if err != nil {
		return err
	}
	elapsed := time.Since(start).Seconds()
	cpu := (t1.User + t1.System - t0.User - t0.System) / elapsed * 100
	mi, err := p.MemoryInfo()
	if err != nil {
		return err
	}
	rss := float64(mi.RSS) / (1 << 20)
	fmt.Printf("connected idle agent over %s: RSS %.1f MiB (peak %.1f MiB), CPU %.3f %% of one core, reconnects %d\n",
		window, rss, float64(peak)/(1<<20), cpu, srv.Accepted()-1)
	if float64(peak)/(1<<20) > maxRSS || cpu > maxCPU {
		return fmt.Errorf("target missed: RSS ≤ %.0f MiB and CPU ≤ %.2f %%", maxRSS, maxCPU)
	}
	return nil
}
