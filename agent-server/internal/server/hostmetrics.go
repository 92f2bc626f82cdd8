package server

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/hostmetrics"
	"github.com/agentfleet/agent-server/internal/hub"
)

// newHostMetrics builds the metrics-agents' service from the hostmetrics.*
// keys and registers its push handlers on h.
func newHostMetrics(c config.HostMetrics, st hostmetrics.Store, h *hub.Hub, log *slog.Logger, reg prometheus.Registerer) (*hostmetrics.Service, error) {
	o := hostmetrics.Options{
		Store: st, Hub: h, Logger: log.With("component", "hostmetrics"), Registry: reg,
		FlushInterval:    time.Duration(c.FlushInterval),
		Retention:        time.Duration(c.HistoryRetention),
		HistoryInterval:  time.Duration(c.HistoryInterval),
		StaleIntervals:   int(c.StaleIntervals),
		MaxInterfaces:    int(c.MaxInterfaces),
		MaxMounts:        int(c.MaxMounts),
		MaxSensors:       int(c.MaxSensors),
		FleetConcurrency: int(c.FleetConcurrency),
		RecentWindow:     time.Duration(c.RecentWindow),
		RecentStep:       time.Duration(c.RecentStep),
		MaxRecentHosts:   int(c.MaxRecentHosts),
	}
	// In the config 0 means "none" / "every sample"; in Options, < 0 does.
	if o.Retention == 0 {
		o.Retention = -1
	}
	if o.HistoryInterval == 0 {
		o.HistoryInterval = -1
	}
	if o.RecentWindow == 0 {
		o.RecentWindow = -1
	}
	svc, err := hostmetrics.New(o)
	if err != nil {
		return nil, fmt.Errorf("host metrics: %w", err)
	}
	svc.Register(h)
	return svc, nil
}
