package libagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent/buildinfo"
	"github.com/agentfleet/libagent/journal"
	"github.com/agentfleet/libagent/protocol"
	"github.com/agentfleet/libagent/statefile"
)

// Agent describes an agent: its identity, its config and its handlers.
type Agent struct {
	// Name is the agent's name, sent in come and used for the service and
	// the log file names ("exec-agent").
	Name string
	// Version is sent in come and the self-report; empty means
	// buildinfo.Version.
	Version string
	// Config points to the agent's config struct, which has a Basic field
	// tagged kv:"basic" (or is a *Basic). Run loads the config file into it.
	Config any
	// Caps are the protocol capabilities the agent's own handlers implement
	// (protocol.CapStream, protocol.CapBulk); the runtime adds the ones it
	// implements itself (auth, ack).
	Caps []string
	// Setup registers the handlers (rt.Handle) and starts whatever the
	// agent runs beside them; goroutines it starts must stop when ctx of
	// Run is done. It runs after the config, logging, limits and state are
	// ready and before the first connection.
	Setup func(rt *Runtime) error
	// Report, when set, adds agent-defined fields to every self-report
	// (type 7). Keys of the standard report cannot be overridden.
	Report func(extra map[string]any)
}

// Options tune Run. The zero value is right for production; tests shorten
// the intervals.
type Options struct {
	// ConfigPath is the agent's config file. Empty: Agent.Config is used as
	// it is (DefaultBasic is applied when its Basic is zero).
	ConfigPath string
	// StatePath is the state file (assigned id, secret). Default: the
	// config path with the extension ".state"; with no config path and no
	// StatePath the state is kept in memory only.
	StatePath string
	// JournalDir holds the reliable-results journal. Default: "<state
	// path without extension>.journal". Empty with no state path: results
	// are not journaled.
	JournalDir string
	// JournalMax bounds the journal (default 64 MiB).
	JournalMax int64
	// BaseDir resolves a relative basic.log.dir (default: the directory of
	// the executable).
	BaseDir string
	// Logger replaces the logger built from basic.log.* (tests).
	Logger *slog.Logger
	// KeepAlive is the ping interval; a link silent for three intervals is
	// dead (default 10 s).
	KeepAlive time.Duration
	// DialTimeout bounds the TCP + TLS + WebSocket upgrade (default 10 s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds come → handshake (default 30 s).
	HandshakeTimeout time.Duration
	// WriteTimeout is the deadline of every write (default 10 s).
	WriteTimeout time.Duration
	// Backoff is the reconnect backoff (default 1 s → 60 s, full jitter,
	// reset after 30 s connected).
	Backoff *backoff.Backoff
	// MaxFrame is the read limit per frame (default protocol.MaxFrame).
	MaxFrame int64
	// Queue is the send queue length (default 64).
	Queue int
	// Workers bounds the handlers running at once (default 64); requests
	// beyond it are refused with an error reply.
	Workers int
	// MonitorInterval overrides basic.monitor.interval, without its 5 s
	// floor (tests).
	MonitorInterval time.Duration
	// SkipLimits does not apply basic.limit.* (tests, which share a process).
	SkipLimits bool
}

func (o *Options) defaults() {
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Backoff == nil {
		o.Backoff = &backoff.Backoff{Min: time.Second, Max: time.Minute}
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = protocol.MaxFrame
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.BaseDir == "" {
		if exe, err := os.Executable(); err == nil {
			o.BaseDir = filepath.Dir(exe)
		}
	}
	if o.JournalMax <= 0 {
		o.JournalMax = 64 << 20
	}
	if o.StatePath == "" && o.ConfigPath != "" {
		o.StatePath = strings.TrimSuffix(o.ConfigPath, filepath.Ext(o.ConfigPath)) + ".state"
	}
	if o.JournalDir == "" && o.StatePath != "" {
		o.JournalDir = strings.TrimSuffix(o.StatePath, filepath.Ext(o.StatePath)) + ".journal"
	}
}

// Run runs the agent until ctx is done, then stops its handlers and returns
// nil. It returns an error only when start-up fails (config, logging,
// state). The start-up order is the one of the package documentation.
func Run(ctx context.Context, a *Agent, opts Options) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rt, err := start(ctx, a, opts)
	if err != nil {
		return err
	}
	defer rt.close()
	rt.cancelRun = cancel
	if err := rt.run(ctx); err != nil {
		return err
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrRestart) {
		return cause
	}
	return nil
}

// start performs the start-up steps up to the first connection.
func start(ctx context.Context, a *Agent, opts Options) (_ *Runtime, err error) {
	opts.defaults()
	if a.Name == "" {
		return nil, errors.New("libagent: Agent.Name is empty")
	}
	if a.Version == "" {
		a.Version = buildinfo.Version
	}
	basic, err := findBasic(a.Config)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{
		agent:    a,
		basic:    basic,
		opts:     opts,
		handlers: map[protocol.Type]handler{},
		pool:     make(chan struct{}, opts.Workers),
		bo:       opts.Backoff,
		ackCh:    make(chan struct{}),
		tasks:    map[string]*task{},
		report:   a.Report,
	}
	defer func() {
		if err != nil {
			rt.close()
		}
	}()

	// 1. Config.
	if opts.ConfigPath != "" {
		if err := loadConfig(opts.ConfigPath, a.Config, basic); err != nil {
			return nil, err
		}
	} else if isZero(basic) {
		*basic = DefaultBasic()
	}
	warnings, err := basic.validate()
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", opts.ConfigPath, err)
	}
	rt.labels, _ = parseLabels(basic.Labels)
	rt.servers = []string{basic.Server}

	// 2. Logging.
	if opts.Logger != nil {
		rt.log = opts.Logger
	} else if rt.log, rt.logs, rt.logClose, err = newLogger(a.Name, opts.BaseDir, basic.Log); err != nil {
		return nil, err
	}
	for _, w := range warnings {
		rt.log.Warn("config: " + w)
	}
	rt.log.Info("starting", "agent", a.Name, "version", a.Version, "config", opts.ConfigPath)

	// 3. Resource limits.
	if !opts.SkipLimits {
		rt.applyLimits()
	}

	// 4. Self-monitor (its baseline starts now).
	rt.sampler = newSampler()

	// State: assigned id, secret; journal of reliable results.
	if opts.StatePath != "" {
		if rt.state, err = statefile.Load(opts.StatePath); err != nil {
			return nil, err
		}
		rt.id, _ = rt.state.Identity()
	}
	if basic.ID != "" {
		rt.id = basic.ID
	}
	if opts.JournalDir != "" {
		if rt.jr, err = journal.Open(opts.JournalDir, opts.JournalMax); err != nil {
			return nil, err
		}
		if rt.jid, err = journalID(opts.JournalDir); err != nil {
			return nil, err
		}
	}
	if rt.tls, err = tlsConfig(basic.TLS, rt.log); err != nil {
		return nil, err
	}
	rt.facts = collectHostFacts(ctx)
	rt.pending = rt.upgradeStartup()
	rt.builtins()
	if a.Setup != nil {
		rt.ctx = ctx
		if err := a.Setup(rt); err != nil {
			return nil, fmt.Errorf("%s setup: %w", a.Name, err)
		}
	}
	return rt, nil
}

// run connects (5–7: connect and handshake, read/write loops, keepalive)
// and reports until ctx is done.
func (rt *Runtime) run(ctx context.Context) error {
	rt.ctx = ctx
	var wg sync.WaitGroup
	if rt.basic.Monitor.Enabled {
		wg.Go(func() { rt.reportLoop(ctx) })
	}
	if rt.jr != nil {
		wg.Go(func() { rt.syncLoop(ctx) })
	}
	if rt.pending != nil {
		wg.Go(func() { rt.confirmUpgrade(ctx, *rt.pending) })
	}
	rt.connectLoop(ctx)
	wg.Wait()
	rt.wg.Wait() // handlers see ctx done and return
	rt.log.Info("stopped", "agent", rt.agent.Name)
	return nil
}

// journalSync is how often journaled results are made durable against a
// host crash; Append alone already survives a crash of the agent.
const journalSync = 200 * time.Millisecond

// syncLoop fsyncs the journal while it has unsynced records (Sync is a no-op
// otherwise); Close syncs a last time. A failure that lasts (a full disk
// cannot take the acknowledged position) is logged when it starts and when
// it ends, not every round.
func (rt *Runtime) syncLoop(ctx context.Context) {
	t := time.NewTicker(journalSync)
	defer t.Stop()
	var failing string // the error being retried, "" when none
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := rt.jr.Sync()
			switch {
			case err != nil && err.Error() != failing:
				failing = err.Error()
				rt.log.Warn("journal sync (retried every round, logged again when the error changes)", "err", err)
			case err == nil && failing != "":
				failing = ""
				rt.log.Info("journal sync works again")
			}
		}
	}
}

func (rt *Runtime) close() {
	if rt.jr != nil {
		_ = rt.jr.Close()
	}
	if rt.logClose != nil {
		rt.logClose()
	}
}

func isZero(b *Basic) bool {
	return b.Server == "" && b.ID == "" && b.Token == "" && len(b.Log.Target) == 0 && b.Monitor.Interval == 0
}

// journalID returns the random id of the journal in dir, created with it.
func journalID(dir string) (string, error) {
	p := filepath.Join(dir, "id")
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	id := utils.RandomHex(16)
	if err := statefile.WriteAtomic(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("journal id: %w", err)
	}
	return id, nil
}
