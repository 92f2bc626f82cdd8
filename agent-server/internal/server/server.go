// Package server assembles agent-server from its parts: config → logging →
// store → hub → API → HTTP server, and takes them down again in order.
//
// Agents are upserted in the store when they connect and their last_seen is
// written in batches (see recorder); their /metrics series are dropped when
// they disconnect. Shutdown: stop accepting, tell the agents (hub.Shutdown),
// answer the requests in flight (http.Server.Shutdown with a deadline),
// flush the agent records, close the store.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/agentfleet/jkframe/logging"
	"github.com/agentfleet/jkframe/stat"
	"github.com/agentfleet/libagent/buildinfo"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/api"
	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/cluster"
	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/hostmetrics"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/installsvc"
	logcollect "github.com/agentfleet/agent-server/internal/logging"
	"github.com/agentfleet/agent-server/internal/metrics"
	"github.com/agentfleet/agent-server/internal/packages"
	"github.com/agentfleet/agent-server/internal/shell"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/internal/tasks"
	"github.com/agentfleet/agent-server/internal/upgrade"
)

// Options tune New beyond the config file.
type Options struct {
	// Logger replaces the logger built from the log_* keys (tests).
	Logger *slog.Logger
	// Stdout is the stdout target of the built logger (default os.Stdout).
	Stdout io.Writer
	// Version is reported by the API (default buildinfo.Version).
	Version string
	// ShutdownTimeout bounds the graceful shutdown (default 15 s).
	ShutdownTimeout time.Duration
	// TouchInterval is how often last_seen of connected agents is written
	// (default 2 min).
	TouchInterval time.Duration
	// Hub, when set, adjusts the hub options before hub.New (tests shorten
	// timeouts; the load tool lifts limits).
	Hub func(*hub.Options)
	// Shell, when set, adjusts the interactive shell's options (tests
	// shorten the keepalive).
	Shell func(*shell.Options)
	// Exec, when set, adjusts the exec service's options (tests lengthen
	// the legacy late-output window).
	Exec func(*execsvc.Options)
	// Registerer, when set, wraps the server's metrics registry for every
	// registration (tests record which metrics the server defines).
	Registerer func(prometheus.Registerer) prometheus.Registerer
	// Logging, when set, adjusts the log-collection service's options
	// (tests inject a slow disk).
	Logging func(*logcollect.Options)
	// TaskResumeWait is how long tasks resumed at start-up wait for their
	// agents to reconnect (default 1 min).
	TaskResumeWait time.Duration
	// Packages, when set, is the package repository installs take uri
	// from (tests; embedding programs).
	Packages installsvc.Packages
}

// Server is a running agent-server. Create it with New, then Run it.
type Server struct {
	cfg       config.Config
	o         Options
	log       *slog.Logger
	logger    *logging.Logger // nil when Options.Logger was given
	store     store.Store
	hub       *hub.Hub
	api       *api.Server
	reg       *prometheus.Registry  // serves /metrics
	regr      prometheus.Registerer // registers on reg (Options.Registerer)
	agents    *metrics.Agents
	rec       *recorder
	secrets   *secretStore
	hostm     *hostmetrics.Service
	exec      *execsvc.Service    // set before the hub serves; ends tasks agents come back without
	inst      *installsvc.Service // set before the hub serves; asks agents that come back about unfinished installs
	logsvc    *logcollect.Service
	shell     *shell.Service
	pkgs      *packages.Repo
	ln        net.Listener
	http      *http.Server
	disk      *diskWatch
	member    *cluster.Member    // nil for a single server
	leaseLost *cluster.LeaseLost // with member: handshakes refused and sessions closed while its lease has ended
	drain     *cluster.Drain     // with member: its sessions closed once it drains
	tasks     *tasks.Service
	closers   []func()
}

// New opens everything cfg describes and binds the listening socket (so
// Addr is known), but serves nothing until Run.
func New(ctx context.Context, cfg config.Config, o Options) (_ *Server, err error) {
	if o.Version == "" {
		o.Version = buildinfo.Version
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 15 * time.Second
	}
	if o.TouchInterval <= 0 {
		// Connected agents' last_seen only matters after a crash of the
		// server (a disconnect writes it at once, and the API reads it from
		// the live session): every 2 min, not 30 s, keeps 15,000 idle
		// agents from costing 500 row updates a second.
		o.TouchInterval = 2 * time.Minute
	}
	s := &Server{cfg: cfg, o: o, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := s.openLog(); err != nil {
		return nil, err
	}
	if err := cfg.CheckCluster(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.DataDir, cfg.CacheDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := s.lockDataDir(); err != nil {
		return nil, err
	}
	s.regr = s.reg
	if o.Registerer != nil {
		s.regr = o.Registerer(s.reg)
	}
	// The server's own collectors; the components register theirs the same
	// way (jkframe/stat) on s.regr.
	sr := stat.New(s.regr, "")
	sr.Collector(collectors.NewGoCollector())
	sr.Collector(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cm, err := cluster.NewMetrics(s.regr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	apiToks, agentTokens, err := s.tokens()
	if err != nil {
		return nil, err
	}

	st, err := store.Open(ctx, store.Config{
		Driver: cfg.Store.Driver, DSN: cfg.Store.DSN, DataDir: cfg.DataDir,
		OutputCap: int64(cfg.Task.OutputCap), Logger: s.log, Registerer: s.regr,
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.store = st
	s.closers = append(s.closers, func() {
		if err := st.Close(); err != nil {
			s.log.Error("close store", "err", err)
		}
	})

	s.agents = metrics.NewAgents()
	sr.Collector(s.agents)
	sr.Collector(metrics.NewCountsCollector("agentserver_tasks", "Tasks in the store by state.", "state", 5*time.Second, s.taskCounts))
	if err := sr.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s.rec = newRecorder(st, s.log, o.TouchInterval)

	// The store keeps agent secrets and journal high-water marks, so both
	// survive a restart (store.Store implements hub.SecretStore/AckStore);
	// new secrets are written behind the handshake (see secretStore).
	s.secrets = newSecretStore(st, s.log, secretFlushInterval)
	var secrets hub.SecretStore = s.secrets
	var acks hub.AckStore = st
	hopts := hub.Options{
		Logger:         s.log.With("component", "hub"),
		Registry:       s.regr,
		MaxFrame:       int64(cfg.Agent.MaxFrame),
		SendQueueBytes: int64(cfg.Agent.SendQueueBytes),
		AgentTokens:    agentTokens,
		AllowLegacy:    cfg.AllowLegacyAgents,
		ConnectLimit:   float64(cfg.ConnectLimit),
		ConnectBurst:   int(cfg.ConnectBurst),
		Secrets:        secrets,
		Acks:           acks,
		ExtraCaps:      slices.Concat(execsvc.Caps, shell.Caps, logcollect.Caps, installsvc.Caps, upgrade.Caps),
		OnConnect:      s.onConnect,
		OnDisconnect:   s.onDisconnect,
	}
	if cfg.Cluster.Enabled() {
		hopts.Claim = s.claimSession // s.member is set below, before the hub serves
		hopts.Admit = s.admitHandshake
		hopts.Redirect = s.redirectHandshake
	}
	if o.Hub != nil {
		o.Hub(&hopts)
	}
	if s.hub, err = hub.New(hopts); err != nil {
		return nil, err
	}
	s.hub.Handle(protocol.TypeAgentInfo, s.onAgentInfo)
	if s.hostm, err = newHostMetrics(cfg.HostMetrics, st, s.hub, s.log, s.regr); err != nil {
		return nil, err
	}

	if err := s.newCluster(st, cm); err != nil {
		return nil, err
	}

	s.disk = newDiskWatch(cfg.CacheDir, float64(cfg.CacheThreshold), s.log)
	aopts := api.Options{
		Config: &s.cfg, Store: st, Hub: s.hub, Logger: s.log.With("component", "api"),
		Registry: s.regr, Gatherer: s.reg, Tokens: apiToks,
		MetricsToken: cfg.API.MetricsToken, Version: o.Version, Blocking: s.disk.blocking,
	}
	if s.member != nil {
		aopts.Cluster = s.member
		aopts.Drain = s.drainStatus
		if aopts.ForwardTLS, err = forwardTLS(cfg.Cluster.TLSCA); err != nil {
			return nil, err
		}
	}
	s.api, err = api.New(aopts)
	if err != nil {
		return nil, err
	}
	s.api.HandleRaw("GET /ws/agent", s.hub)
	s.api.RoutesMetrics(s.hostm)
	s.api.RoutesSecrets(s.secrets)
	if err := s.newLogging(ctx); err != nil {
		return nil, err
	}

	eopts := execsvc.Options{Hub: s.hub, Store: st, Logger: s.log.With("component", "exec"), CacheDir: cfg.CacheDir, Registry: s.regr}
	if o.Exec != nil {
		o.Exec(&eopts)
	}
	execSvc, err := execsvc.New(eopts)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, execSvc.Close)
	s.exec = execSvc
	s.api.RoutesExec(execSvc)
	shopts := shell.Options{Hub: s.hub, Logger: s.log.With("component", "shell"), Registry: s.regr}
	if o.Shell != nil {
		o.Shell(&shopts)
	}
	if s.shell, err = shell.New(shopts); err != nil {
		return nil, err
	}
	s.api.RoutesShell(s.shell)
	if err := s.openPackages(); err != nil {
		return nil, err
	}
	inst, err := s.newInstall(execSvc)
	if err != nil {
		return nil, err
	}
	s.inst = inst
	if err := s.wireTasks(ctx, execSvc, inst); err != nil {
		return nil, err
	}

	s.http = &http.Server{
		Handler:           s.api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		MaxHeaderBytes:    64 << 10,
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if cfg.TLSEnabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
	}
	if s.member != nil {
		// Joined once the address is ours: a restart of this server takes
		// its member id over from its previous instance by that address.
		if err := s.member.Join(ctx); err != nil {
			_ = ln.Close()
			return nil, err
		}
		// A member's Resume: the tasks whose owner's lease ended, or that
		// this member's previous process owned (cluster.go).
		s.takeOverTasks(ctx)
	}
	s.ln = ln
	return s, nil
}

func (s *Server) openLog() error {
	if s.o.Logger != nil {
		s.log = s.o.Logger
		return nil
	}
	lvl, err := logging.ParseLevel(s.cfg.LogLevel)
	if err != nil {
		return err
	}
	l, err := logging.New(logging.Options{
		Level: lvl, Targets: s.cfg.LogTarget, Dir: s.cfg.LogDir, Name: "agent-server",
		MaxSize: int64(s.cfg.LogSize), Rotate: int(s.cfg.LogRotate), Stdout: s.o.Stdout,
	})
	if err != nil {
		return fmt.Errorf("logging: %w", err)
	}
	s.logger, s.log = l, l.Logger
	return nil
}

// tokens parses the configured tokens and creates the ones that are
// missing: an operator token when no API token is configured, an enrollment
// token when no agent token is. Only the files' paths are logged.
func (s *Server) tokens() (apiToks []config.Token, agent []string, err error) {
	c := &s.cfg
	if apiToks, err = c.APITokens(); err != nil {
		return
	}
	agentToks, err := config.ParseTokens("agent.tokens", "agent", c.Agent.Tokens)
	if err != nil {
		return
	}
	if len(apiToks) == 0 {
		tok, path, created, gerr := config.GeneratedToken(c.DataDir, config.TokenFile, config.GeneratedTokenName)
		if gerr != nil {
			return nil, nil, gerr
		}
		tok.Scopes = []authz.Scope{authz.Admin}
		apiToks = append(apiToks, tok)
		if created {
			s.log.Warn("no api.tokens configured: generated an operator API token", "file", path)
		} else {
			s.log.Info("no api.tokens configured: using the generated operator API token", "file", path)
		}
	}
	if len(agentToks) == 0 {
		tok, path, created, gerr := config.GeneratedToken(c.DataDir, config.AgentTokenFile, config.GeneratedTokenName)
		if gerr != nil {
			return nil, nil, gerr
		}
		agentToks = append(agentToks, tok)
		msg := "no agent.tokens configured: using the generated agent enrollment token (basic.token of the agents)"
		if created {
			msg = "no agent.tokens configured: generated an agent enrollment token (set it as basic.token of the agents)"
		}
		s.log.Warn(msg, "file", path)
	}
	for _, t := range agentToks {
		agent = append(agent, t.Secret)
	}
	return apiToks, agent, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Hub returns the hub, for feature packages that register handlers.
func (s *Server) Hub() *hub.Hub { return s.hub }

// API returns the API server, for feature packages that add routes.
func (s *Server) API() *api.Server { return s.api }

// Packages returns the package repository.
func (s *Server) Packages() *packages.Repo { return s.pkgs }

// openPackages opens the package repository and adds its routes.
func (s *Server) openPackages() error {
	dir := s.cfg.Packages.Dir
	if dir == "" {
		dir = filepath.Join(s.cfg.DataDir, "packages")
	}
	repo, err := packages.New(packages.Options{Dir: dir, MaxSize: int64(s.cfg.Packages.MaxSize),
		Logger: s.log.With("component", "packages"), Registry: s.regr})
	if err != nil {
		return err
	}
	s.pkgs = repo
	s.api.RoutesPackages(repo)
	return nil
}

// Store returns the store.
func (s *Server) Store() store.Store { return s.store }

// Run serves until ctx is done, then shuts down gracefully and releases
// everything New opened. It returns the first serving or shutdown error.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	recCtx, stopRec := context.WithCancel(context.Background())
	wg.Go(func() { s.rec.run(recCtx, s.onlineIDs) })
	// Stopped after the hub, so the last new secrets are written.
	wg.Go(func() { s.secrets.run(recCtx) })
	wg.Go(func() { s.hostm.Run(recCtx) })  // stopped after the hub: the last pushes are flushed
	wg.Go(func() { s.logsvc.Run(recCtx) }) // stopped after the hub: the last batches are stored
	if s.member != nil {
		wg.Go(func() { s.member.Run(recCtx) })   // renews the lease until the hub is down
		wg.Go(func() { s.runLeaseLost(recCtx) }) // also steps the drain
		wg.Go(func() { s.runTakeOver(ctx) })     // takes no task over once shutting down
	}
	attrs := []any{"addr", s.Addr(), "tls", s.cfg.TLSEnabled(), "id", s.cfg.ID, "version", s.o.Version, "store", s.cfg.Store.Driver}
	if s.member != nil {
		attrs = append(attrs, "cluster", s.member.Name(), "member", s.member.ID(), "epoch", s.member.Epoch())
	}
	s.log.Info("agent-server listening", attrs...)

	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
		serveErr = s.drainOnStop(errc)
	case serveErr = <-errc:
	}

	s.log.Info("agent-server shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.o.ShutdownTimeout)
	defer cancel()
	var herr error
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- s.http.Shutdown(sctx) }() // closes the listener at once
	// Interactive sessions are hijacked connections, which http.Shutdown
	// does not wait for: end them while their agents are still connected.
	if err := s.shell.Close(sctx); err != nil {
		herr = err
	}
	if err := s.hub.Shutdown(sctx); err != nil {
		herr = err
	}
	if err := <-shutdownDone; err != nil {
		herr = errors.Join(herr, fmt.Errorf("http shutdown: %w", err))
		_ = s.http.Close()
	}
	if serveErr == nil {
		serveErr = <-errc
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	stopRec()
	wg.Wait() // the recorder flushed its last batch
	s.close()
	return errors.Join(serveErr, herr)
}

// close releases what New opened, in reverse order.
func (s *Server) close() {
	if s.ln != nil && s.http == nil {
		_ = s.ln.Close()
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
	if s.logger != nil {
		_ = s.logger.Close()
	}
}

// Close releases a Server that was created but never Run.
func (s *Server) Close() {
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.hub != nil {
		_ = s.hub.Shutdown(context.Background())
	}
	s.close()
}

func (s *Server) onlineIDs() []string {
	infos := s.hub.Sessions()
	ids := make([]string, len(infos))
	for i, in := range infos {
		ids[i] = in.ID
	}
	return ids
}

func (s *Server) onConnect(sess *hub.Session) {
	c := sess.Come()
	now := time.Now()
	a := store.Agent{
		ID: sess.ID(), Type: c.Name, Version: c.Version, MAC: c.MAC, HostName: c.HostName, OS: c.OS,
		Platform: c.Platform, PlatformVersion: c.PlatformVersion, KernelVersion: c.KernelVersion, Arch: c.Arch,
		CPU: c.CPU, CPUCore: int(c.CPUCore), Memory: c.Memory, Labels: c.Labels, ConnectedAt: now, LastSeen: now,
	}
	if c.IP != nil {
		a.IP = c.IP.String()
	}
	if a.Labels != nil && store.ValidateLabels(a.Labels) != nil {
		s.log.Warn("agent labels rejected", "agent", a.ID, "err", store.ValidateLabels(a.Labels))
		a.Labels = nil
	}
	s.rec.upsert(a)
	if s.exec != nil {
		s.exec.Reconnected(sess) // ends the tasks the agent came back without
	}
	if s.inst != nil {
		s.inst.Reconnected(sess) // asks about installs sent on an earlier connection
	}
	s.logsvc.OnConnect(sess)
}

func (s *Server) onDisconnect(sess *hub.Session, reason string) {
	s.logsvc.OnDisconnect(sess) // per session, replaced or not
	s.releaseSession(sess)      // per session: a later one holds a later token
	id := sess.ID()
	if cur, ok := s.hub.Session(id); ok && cur != sess {
		return // replaced by a newer session of the same agent
	}
	s.agents.Delete(id)
	s.hostm.Forget(id)
	s.rec.touch(id)
}

func (s *Server) onAgentInfo(sess *hub.Session, m *protocol.Msg) {
	if m.AI() == nil {
		return
	}
	s.agents.Set(sess.ID(), sess.Come().Name, *m.AI(), time.Now())
}

func (s *Server) taskCounts(ctx context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	for _, st := range []store.TaskState{store.TaskPending, store.TaskRunning, store.TaskDone, store.TaskCancelled, store.TaskFailed} {
		_, n, err := s.store.ListTasks(ctx, store.TaskFilter{States: []store.TaskState{st}, Paging: store.Paging{Size: 1}})
		if err != nil {
			return nil, err
		}
		out[string(st)] = float64(n)
	}
	return out, nil
}
