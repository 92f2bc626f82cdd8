package config

import (
	"time"

	"github.com/agentfleet/jkframe/utils"
)

// Logging configures the log-collection store (logging.* keys): the
// segment files of the collected lines and their retention.
type Logging struct {
	// Dir holds the segments; empty: <data_dir>/logcollect.
	Dir string `kv:"dir"`
	// SegmentSize closes a segment at this size; SegmentAge this long
	// after it was opened.
	SegmentSize utils.Bytes    `kv:"segment_size"`
	SegmentAge  utils.Duration `kv:"segment_age"`
	// MaxAge deletes segments last written longer ago (0: never).
	MaxAge utils.Duration `kv:"max_age"`
	// MaxSize bounds each project's segments (0: no bound).
	MaxSize utils.Bytes `kv:"max_size"`
	// NATS forwards the lines to NATS JetStream (logging_nats.go).
	NATS LoggingNATS `kv:"nats"`
}

// DefaultLogging returns the defaults of the logging.* keys.
func DefaultLogging() Logging {
	return Logging{SegmentSize: 64 << 20, SegmentAge: utils.Duration(time.Hour), MaxAge: utils.Duration(7 * 24 * time.Hour), MaxSize: 10 << 30,
		NATS: DefaultLoggingNATS()}
}

func (l *Logging) check(add func(error)) {
	if l.SegmentSize < 1<<20 || l.SegmentSize > 1<<30 {
		add(invalid("logging.segment_size", "must be between 1M and 1G"))
	}
	if l.SegmentAge < utils.Duration(time.Minute) || l.SegmentAge > utils.Duration(24*time.Hour) {
		add(invalid("logging.segment_age", "must be between 1m and 1d"))
	}
	if l.MaxAge < 0 {
		add(invalid("logging.max_age", "must be 0 (no limit) or more"))
	}
	l.NATS.check(add)
	// MaxSize is unsigned (utils.Bytes): 0 is no limit, the parser refuses a sign.
}
