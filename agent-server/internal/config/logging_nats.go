package config

import (
	"path"
	"regexp"
	"time"

	"github.com/agentfleet/jkframe/utils"
)

// LoggingNATS configures the forwarding of the collected lines to NATS
// JetStream (logging.nats.* keys): a stream per project, at least once.
// Forwarding is off while URL is empty.
type LoggingNATS struct {
	// URL: the NATS servers, comma-separated nats:// or tls:// URLs.
	URL string `kv:"url"`
	// Creds is a credentials file (JWT and NKey seed); TokenFile a file
	// holding a token; TLSCA the CA bundle verifying the servers. The
	// secrets stay in files so the config file can be shown.
	Creds     string `kv:"creds"`
	TokenFile string `kv:"token_file"`
	TLSCA     string `kv:"tls_ca"`
	// Projects: path.Match patterns of the projects forwarded.
	Projects []string `kv:"projects"`
	// StreamPrefix + project is the stream name; SubjectPrefix.project.host
	// the subject of a host's lines.
	StreamPrefix  string `kv:"stream_prefix"`
	SubjectPrefix string `kv:"subject_prefix"`
	// MaxAge and MaxBytes bound each stream (0: no bound); DuplicateWindow
	// is how long JetStream remembers message ids to drop re-sends.
	MaxAge          utils.Duration `kv:"max_age"`
	MaxBytes        utils.Bytes    `kv:"max_bytes"`
	DuplicateWindow utils.Duration `kv:"duplicate_window"`
	Replicas        uint           `kv:"replicas"`
	// AckTimeout: a publish not acknowledged this long is sent again.
	AckTimeout utils.Duration `kv:"ack_timeout"`
	// KeepStore false deletes the embedded segments once forwarded.
	KeepStore bool `kv:"keep_store"`
	// Start: where a host without a forwarding cursor begins, "oldest"
	// (every line still stored) or "newest" (lines stored from now on).
	Start string `kv:"start"`
}

// Enabled reports whether forwarding is configured.
func (n *LoggingNATS) Enabled() bool { return n.URL != "" }

// DefaultLoggingNATS returns the defaults of the logging.nats.* keys.
func DefaultLoggingNATS() LoggingNATS {
	return LoggingNATS{Projects: []string{"*"}, StreamPrefix: "LOGS_", SubjectPrefix: "logs",
		MaxAge: utils.Duration(7 * 24 * time.Hour), MaxBytes: 1 << 30, DuplicateWindow: utils.Duration(2 * time.Minute),
		Replicas: 1, AckTimeout: utils.Duration(10 * time.Second), KeepStore: true, Start: "oldest"}
}

var (
	natsStreamPrefixRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{0,32}$`)
	natsSubjectPrefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}(\.[A-Za-z0-9_-]{1,32}){0,3}$`)
)

func (n *LoggingNATS) check(add func(error)) {
	checkNATS("logging.nats.url", n.URL, "logging.nats.creds or logging.nats.token_file", add)
	if n.Creds != "" && n.TokenFile != "" {
		add(invalid("logging.nats.creds", "logging.nats.creds and logging.nats.token_file exclude each other"))
	}
	if len(n.Projects) == 0 {
		add(invalid("logging.nats.projects", "must name at least one pattern (* forwards every project)"))
	}
	for _, p := range n.Projects {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			add(invalid("logging.nats.projects", "%q is not a path.Match pattern", p))
		}
	}
	if !natsStreamPrefixRE.MatchString(n.StreamPrefix) {
		add(invalid("logging.nats.stream_prefix", "must be at most 32 of A-Z a-z 0-9 _ -"))
	}
	if !natsSubjectPrefixRE.MatchString(n.SubjectPrefix) {
		add(invalid("logging.nats.subject_prefix", "must be 1 to 4 dot-separated tokens of A-Z a-z 0-9 _ -"))
	}
	if n.MaxAge < 0 {
		add(invalid("logging.nats.max_age", "must be 0 (no limit) or more"))
	}
	if n.DuplicateWindow < utils.Duration(time.Second) || n.DuplicateWindow > utils.Duration(24*time.Hour) {
		add(invalid("logging.nats.duplicate_window", "must be between 1s and 1d"))
	} else if n.MaxAge > 0 && n.DuplicateWindow > n.MaxAge {
		add(invalid("logging.nats.duplicate_window", "must not exceed logging.nats.max_age"))
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		add(invalid("logging.nats.replicas", "must be between 1 and 5"))
	}
	if n.AckTimeout < utils.Duration(100*time.Millisecond) || n.AckTimeout > utils.Duration(5*time.Minute) {
		add(invalid("logging.nats.ack_timeout", "must be between 100ms and 5m"))
	}
	if n.Start != "oldest" && n.Start != "newest" {
		add(invalid("logging.nats.start", "must be oldest or newest"))
	}
}
