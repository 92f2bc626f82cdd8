package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/agentfleet/agent-server/internal/config"
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
	o := logging.Options{
		Store: s.store, Hub: s.hub, Logger: s.log.With("component", "logging"), Registry: s.regr,
		Segments: logging.StoreOptions{Dir: dir, SegmentBytes: int64(c.SegmentSize), SegmentAge: time.Duration(c.SegmentAge),
			MaxAge: time.Duration(c.MaxAge), MaxBytes: int64(c.MaxSize)},
		Forward: forwardOptions(&c.NATS),
	}
	if s.o.Logging != nil {
		s.o.Logging(&o)
	}
	svc, err := logging.New(ctx, o)
	if err != nil {
		return fmt.Errorf("log collection: %w", err)
	}
	svc.Register(s.hub)
	s.api.RoutesLogging(svc)
	s.logsvc = svc
	return nil
}

// forwardOptions maps the logging.nats.* keys; nil when forwarding is off.
func forwardOptions(n *config.LoggingNATS) *logging.ForwardOptions {
	if !n.Enabled() {
		return nil
	}
	return &logging.ForwardOptions{
		URLs: n.URL, Creds: n.Creds, TokenFile: n.TokenFile, TLSCA: n.TLSCA, Projects: n.Projects,
		StreamPrefix: n.StreamPrefix, SubjectPrefix: n.SubjectPrefix,
		MaxAge: time.Duration(n.MaxAge), MaxBytes: int64(n.MaxBytes), DuplicateWindow: time.Duration(n.DuplicateWindow),
		Replicas: int(n.Replicas), AckTimeout: time.Duration(n.AckTimeout),
		DropForwarded: !n.KeepStore, StartNewest: n.Start == "newest",
	}
}
