package config

import (
	"strings"
	"testing"
	"time"
)

func TestHostMetricsKeys(t *testing.T) {
	c, err := Parse([]byte("id = x\n"), "t.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := c.HostMetrics
	if time.Duration(h.FlushInterval) != 5*time.Second || time.Duration(h.HistoryRetention) != 24*time.Hour ||
		time.Duration(h.HistoryInterval) != time.Minute || h.StaleIntervals != 3 || h.MaxInterfaces != 32 ||
		h.MaxMounts != 32 || h.MaxSensors != 64 || h.FleetConcurrency != 32 ||
		time.Duration(h.RecentWindow) != time.Hour || time.Duration(h.RecentStep) != 15*time.Second || h.MaxRecentHosts != 100000 {
		t.Errorf("defaults = %+v", h)
	}
	c, err = Parse([]byte("id = x\nhostmetrics.history_retention = 0\nhostmetrics.history_interval = 0\nhostmetrics.flush_interval = 1s\n"), "t.conf", Options{})
	if err != nil || c.HostMetrics.HistoryRetention != 0 || c.HostMetrics.HistoryInterval != 0 || time.Duration(c.HostMetrics.FlushInterval) != time.Second {
		t.Errorf("zero values: %+v %v", c.HostMetrics, err)
	}
	for _, tc := range []struct{ line, err string }{
		{"hostmetrics.flush_interval = 10ms", "hostmetrics.flush_interval: invalid config: must be between 100ms and 1m"},
		{"hostmetrics.flush_interval = 2m", "hostmetrics.flush_interval: invalid config: must be between 100ms and 1m"},
		{"hostmetrics.history_retention = 400d", "hostmetrics.history_retention: invalid config: must be between 0 (no history) and 366d"},
		{"hostmetrics.history_interval = 2d", "hostmetrics.history_interval: invalid config: must be between 0 (every sample) and 1d"},
		{"hostmetrics.stale_intervals = 1", "hostmetrics.stale_intervals: invalid config: must be between 2 and 100"},
		{"hostmetrics.max_interfaces = 0", "hostmetrics.max_interfaces: invalid config: must be between 1 and 1024"},
		{"hostmetrics.max_mounts = 5000", "hostmetrics.max_mounts: invalid config: must be between 1 and 1024"},
		{"hostmetrics.max_sensors = 0", "hostmetrics.max_sensors: invalid config: must be between 1 and 1024"},
		{"hostmetrics.fleet_concurrency = 0", "hostmetrics.fleet_concurrency: invalid config: must be between 1 and 1024"},
		{"hostmetrics.recent_window = 2d", "hostmetrics.recent_window: invalid config: must be between 0 (none) and 1d"},
		{"hostmetrics.recent_step = 0", "hostmetrics.recent_step: invalid config: must be whole seconds between 1s and 1h"},
		{"hostmetrics.recent_step = 1500ms", "hostmetrics.recent_step: invalid config: must be whole seconds between 1s and 1h"},
		{"hostmetrics.recent_step = 1s\nhostmetrics.recent_window = 1d", "hostmetrics.recent_step: invalid config: gives more than 8640 samples"},
		{"hostmetrics.max_recent_hosts = 0", "hostmetrics.max_recent_hosts: invalid config: must be between 1 and 1000000"},
		{"hostmetrics.bogus = 1", "bogus"},
	} {
		_, err := Parse([]byte("id = x\n"+tc.line+"\n"), "t.conf", Options{})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.line, err, tc.err)
		}
	}
}
