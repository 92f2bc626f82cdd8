package agent

import (
	"sync"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/files"
	"github.com/agentfleet/exec-agent/internal/runner"
)

// Name is the agent's name in come and in its service and log file names.
const Name = "exec-agent"

// New returns the exec-agent for libagent.Main or libagent.Run. cfg is
// filled from the config file before Setup runs; start it from
// DefaultConfig so that keys absent from the file keep their defaults.
func New(cfg *Config) *libagent.Agent {
	return &libagent.Agent{
		Name:   Name,
		Config: cfg,
		Caps:   append([]string{protocol.CapStream, protocol.CapBulk, protocol.CapInstall}, shellCaps...),
		Setup:  func(rt *libagent.Runtime) error { return setup(rt, cfg) },
	}
}

// agent holds what the handlers share.
type agent struct {
	rt  *libagent.Runtime
	run *runner.Runner
	fs  *files.FS
	// grace is the kill grace of the runner.
	grace time.Duration
	// idle ends an interactive session without input or output for that
	// long (0: never); drain is how long its output is still read after
	// its main process ended.
	idle, drain time.Duration

	shellMu sync.Mutex
	shells  map[string]*shellSession // live interactive sessions by tid

	// recs keeps a record per running exec (see records); reported is
	// closed once the ends of the tasks a previous agent process left are
	// reported.
	recs     records
	reported chan struct{}

	// execs are the exec tasks from their start until their exec_done is
	// handed to the runtime (the runner forgets a task just before): ps
	// lists them, so a task missing from a ps answer has its exec_done
	// sent (or journaled) before that answer.
	execMu sync.Mutex
	execs  map[string]runner.Info

	inst *installer // software installs (install.v1)
}

func setup(rt *libagent.Runtime, cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	a := &agent{
		rt: rt, grace: cfg.Exec.KillGrace, idle: cfg.Exec.ShellIdleTimeout, drain: cfg.Exec.DrainTimeout,
		shells: make(map[string]*shellSession),
		run: runner.New(runner.Options{
			MaxTasks:     cfg.Exec.MaxTasks,
			KillGrace:    cfg.Exec.KillGrace,
			DrainTimeout: cfg.Exec.DrainTimeout,
			Logger:       rt.Logger(),
		}),
		fs:       files.New(files.Options{TempDir: cfg.File.TempDir}),
		recs:     records{log: rt.Logger()},
		reported: make(chan struct{}),
		execs:    make(map[string]runner.Info),
	}
	if st := rt.State(); st != nil {
		a.recs.dir = recordsDir(st.Path())
	}
	// Before the first connection: no command of a previous agent process
	// runs on once this one answers the server.
	reports := a.reapOrphans()
	go a.reportOrphans(rt.Context(), reports)
	installs, err := a.setupInstall(cfg.Install)
	if err != nil {
		return err
	}
	go a.reportInstalls(rt.Context(), installs)
	rt.Handle(protocol.TypeExec, a.exec)
	rt.Handle(protocol.TypeExecKill, a.kill)
	rt.Handle(protocol.TypePsReq, a.ps)
	rt.Handle(protocol.TypeLsReq, a.ls)
	rt.Handle(protocol.TypeUpload, a.upload)
	rt.Handle(protocol.TypeDownloadReq, a.download)
	rt.Handle(protocol.TypePtyOpen, a.ptyOpen, libagent.ConnScoped())
	rt.Handle(protocol.TypePtyInput, a.ptyInput, libagent.Inline())
	rt.Handle(protocol.TypePtyResize, a.ptyResize, libagent.Inline())
	rt.Handle(protocol.TypePtyAck, a.ptyAck, libagent.Inline())
	rt.Handle(protocol.TypePtyClose, a.ptyClose, libagent.Inline())
	rt.Handle(protocol.TypeInstallRun, a.installRun)
	// Inline: install_status_req carries the tid of the install it asks
	// about, and a request on the worker pool with the tid of a running
	// one replaces it (cancelling the install).
	rt.Handle(protocol.TypeInstallStatusReq, a.installStatus, libagent.Inline())
	return nil
}
