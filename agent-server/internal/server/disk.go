package server

import (
	"log/slog"
	"sync"
	"time"
)

// diskWatch answers whether the cache dir's file system is fuller than the
// threshold, checking at most every few seconds.
type diskWatch struct {
	dir       string
	threshold float64
	log       *slog.Logger

	mu      sync.Mutex
	checked time.Time
	full    bool
}

func newDiskWatch(dir string, threshold float64, log *slog.Logger) *diskWatch {
	return &diskWatch{dir: dir, threshold: threshold, log: log}
}

const diskCheckEvery = 5 * time.Second

func (d *diskWatch) blocking() bool {
	if d.threshold <= 0 || d.threshold >= 100 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.checked) < diskCheckEvery {
		return d.full
	}
	d.checked = time.Now()
	used, err := diskUsedPercent(d.dir)
	if err != nil {
		d.log.Warn("disk usage of cache_dir unknown", "dir", d.dir, "err", err)
		d.full = false
		return false
	}
	if full := used > d.threshold; full != d.full {
		d.full = full
		d.log.Warn("cache_dir disk usage crossed cache_threshold", "dir", d.dir, "used_percent", used, "threshold", d.threshold, "blocking", full)
	}
	return d.full
}
