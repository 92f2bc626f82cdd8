package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/installsvc"
	"github.com/agentfleet/agent-server/internal/layout"
	"github.com/agentfleet/agent-server/internal/packages"
	"github.com/agentfleet/agent-server/internal/tasks"
	"github.com/agentfleet/agent-server/internal/upgrade"
)

// wireTasks starts the fleet task, layout and upgrade service on the exec
// service, the install service and the package repository, adds its routes
// and resumes the tasks a previous run left running (not in a cluster).
func (s *Server) wireTasks(ctx context.Context, execSvc *execsvc.Service, inst *installsvc.Service) error {
	up := upgrade.New(upgrade.Options{Packages: s.pkgs, Hub: s.hub, Offer: execSvc, Logger: s.log.With("component", "upgrade")})
	o := tasks.Options{
		Store: s.store, Exec: tasks.NewExecutor(execSvc, s.hub), Install: tasks.NewInstaller(inst),
		Logger:     s.log.With("component", "tasks"),
		Registerer: s.regr, ResultDir: filepath.Join(s.cfg.DataDir, "layouts"),
		ResumeWait: s.o.TaskResumeWait, Upgrader: up,
	}
	if s.member != nil {
		o.Owner = s.member // tasks owned by this member, taken over from dead ones
	}
	svc, err := tasks.New(o)
	if err != nil {
		return err
	}
	s.tasks = svc
	s.closers = append(s.closers, svc.Close) // runs before execSvc.Close
	// Layouts are not resumed: the files a previous run spooled for them
	// are of no use.
	if err := layout.RemoveSpools(s.cfg.CacheDir); err != nil {
		s.log.Warn("remove old layout spools", "dir", s.cfg.CacheDir, "err", err)
	}
	s.api.RoutesTasks(svc, layout.Limits{})
	s.api.RoutesInstall(svc, inst)
	if s.member != nil {
		// The tasks left running in a shared database may be another
		// member's, running now: a member takes over only those whose
		// owner's lease has ended, once it has joined (takeOverTasks).
		return nil
	}
	if err := svc.Resume(ctx); err != nil {
		return fmt.Errorf("resume tasks: %w", err)
	}
	return nil
}

// newInstall starts the install service: installs from the package
// repository (openPackages runs first) streamed through the exec service's
// one-shot transfers. Its Close runs after the task service's.
func (s *Server) newInstall(execSvc *execsvc.Service) (*installsvc.Service, error) {
	ist, ok := s.store.(installsvc.Store)
	if !ok {
		return nil, fmt.Errorf("install: the store (%T) keeps no install logs", s.store)
	}
	pkgs := s.o.Packages
	if pkgs == nil && s.pkgs != nil {
		pkgs = repoPackages{s.pkgs}
	}
	inst, err := installsvc.New(installsvc.Options{
		Hub: s.hub, Store: ist, Offer: execSvc.Offer, Packages: pkgs,
		Logger: s.log.With("component", "install"), Registerer: s.regr,
	})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, inst.Close)
	return inst, nil
}

// repoPackages is the package repository as the install service reads it.
type repoPackages struct{ r *packages.Repo }

func (p repoPackages) Open(ctx context.Context, name string) (io.ReadCloser, installsvc.Package, error) {
	rc, info, err := p.r.Open(ctx, name)
	if errors.Is(err, packages.ErrNotFound) {
		return nil, installsvc.Package{}, fmt.Errorf("%w: %w", installsvc.ErrPackageNotFound, err)
	}
	if err != nil {
		return nil, installsvc.Package{}, err
	}
	return rc, installsvc.Package{Name: info.Name, Size: info.Size, SHA256: info.SHA256}, nil
}

// takeOverTasks takes over the tasks of members whose lease ended and
// resumes them (tasks.Service.TakeOver); failures are logged, and the next
// round tries again. A draining member takes nothing over: it hands its
// own tasks to the others.
func (s *Server) takeOverTasks(ctx context.Context) {
	if s.tasks == nil || (s.member != nil && s.member.Draining()) {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := s.tasks.TakeOver(tctx)
	if err != nil {
		s.log.Warn("cluster: take over the tasks of members whose lease ended", "err", err)
	}
	if n > 0 {
		s.log.Info("cluster: took over tasks", "count", n)
	}
}

// runTakeOver runs takeOverTasks at the cadence of the lease renewals
// until ctx ends.
func (s *Server) runTakeOver(ctx context.Context) {
	t := time.NewTicker(s.member.RenewEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.takeOverTasks(ctx)
	}
}
