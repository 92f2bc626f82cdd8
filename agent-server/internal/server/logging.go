package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/agentfleet/agent-server/internal/logging"
)

// newLogging builds the log-collection service from the logging.* keys,
// registers its handlers on the hub and its routes on the API.
func (s *Server) newLogging(ctx context.Context) error {
	c := s.cfg.Logging
	dir := c.Dir
	if dir == "" {
		dir = filepath.Join(s.cfg.DataDir, "logcollect")
	}
	svc, err := logging.New(ctx, logging.Options{
		Store: s.store, Hub: s.hub, Logger: s.log.With("component", "logging"), Registry: s.reg,
		Segments: logging.StoreOptions{Dir: dir, SegmentBytes: int64(c.SegmentSize), SegmentAge: time.Duration(c.SegmentAge),
			MaxAge: time.Duration(c.MaxAge), MaxBytes: int64(c.MaxSize)},
	})
	if err != nil {
		return fmt.Errorf("log collection: %w", err)
	}
	svc.Register(s.hub)
	s.api.RoutesLogging(svc)
	s.logsvc = svc
	return nil
}
