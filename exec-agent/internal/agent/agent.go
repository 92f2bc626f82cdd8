package agent

import (
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
		Caps:   []string{protocol.CapStream, protocol.CapBulk},
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
}

func setup(rt *libagent.Runtime, cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	a := &agent{
		rt: rt, grace: cfg.Exec.KillGrace,
		run: runner.New(runner.Options{
			MaxTasks:     cfg.Exec.MaxTasks,
			KillGrace:    cfg.Exec.KillGrace,
			DrainTimeout: cfg.Exec.DrainTimeout,
			Logger:       rt.Logger(),
		}),
		fs: files.New(files.Options{TempDir: cfg.File.TempDir}),
	}
	rt.Handle(protocol.TypeExec, a.exec)
	rt.Handle(protocol.TypeExecKill, a.kill)
	rt.Handle(protocol.TypePsReq, a.ps)
	rt.Handle(protocol.TypeLsReq, a.ls)
	rt.Handle(protocol.TypeUpload, a.upload)
	rt.Handle(protocol.TypeDownloadReq, a.download)
	return nil
}
