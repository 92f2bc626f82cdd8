package server

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/layout"
	"github.com/agentfleet/agent-server/internal/tasks"
)

// wireTasks starts the fleet task and layout service on the exec service,
// adds its routes and resumes the tasks a previous run left running.
func (s *Server) wireTasks(ctx context.Context, execSvc *execsvc.Service) error {
	svc, err := tasks.New(tasks.Options{
		Store: s.store, Exec: tasks.NewExecutor(execSvc, s.hub), Logger: s.log.With("component", "tasks"),
		Registerer: s.reg, ResultDir: filepath.Join(s.cfg.DataDir, "layouts"),
		ResumeWait: s.o.TaskResumeWait,
	})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, svc.Close) // runs before execSvc.Close
	// Layouts are not resumed: the files a previous run spooled for them
	// are of no use.
	if err := layout.RemoveSpools(s.cfg.CacheDir); err != nil {
		s.log.Warn("remove old layout spools", "dir", s.cfg.CacheDir, "err", err)
	}
	s.api.RoutesTasks(svc, layout.Limits{})
	if err := svc.Resume(ctx); err != nil {
		return fmt.Errorf("resume tasks: %w", err)
	}
	return nil
}
