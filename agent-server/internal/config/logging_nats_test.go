package config

import (
	"slices"
	"time"

	"github.com/agentfleet/jkframe/utils"
)

// The logging.nats.* cases join TestParse's table (and FuzzParse's seeds).
func init() {
	parseTests = append(parseTests, []parseCase{
		{"nats off by default", "id = a\n", "", func(c Config) bool { return !c.Logging.NATS.Enabled() && c.Logging.NATS.KeepStore }, ""},
		{"nats", "id = a\nlogging.nats.url = nats://n1:4222, tls://n2:4222\nlogging.nats.creds = fwd.creds\nlogging.nats.tls_ca = /ca.pem\n" +
			"logging.nats.projects = web-*, db\nlogging.nats.stream_prefix = L_\nlogging.nats.subject_prefix = acme.logs\n" +
			"logging.nats.max_age = 1d\nlogging.nats.max_bytes = 5G\nlogging.nats.duplicate_window = 10m\nlogging.nats.replicas = 3\n" +
			"logging.nats.keep_store = false\nlogging.nats.start = newest\nlogging.nats.ack_timeout = 30s\n", "", func(c Config) bool {
			n := c.Logging.NATS
			return n.Enabled() && n.Creds == "/base/fwd.creds" && n.TLSCA == "/ca.pem" && slices.Equal(n.Projects, []string{"web-*", "db"}) &&
				n.StreamPrefix == "L_" && n.SubjectPrefix == "acme.logs" && n.MaxAge == utils.Duration(24*time.Hour) && n.MaxBytes == 5<<30 &&
				n.DuplicateWindow == utils.Duration(10*time.Minute) && n.Replicas == 3 && !n.KeepStore && n.Start == "newest" &&
				n.AckTimeout == utils.Duration(30*time.Second)
		}, ""},
		{"nats token file", "id = a\nlogging.nats.url = nats://n:4222\nlogging.nats.token_file = tok\n", "", func(c Config) bool { return c.Logging.NATS.TokenFile == "/base/tok" }, ""},
		{"nats bad scheme", "id = a\nlogging.nats.url = http://n:4222\n", `logging.nats.url: invalid config: "http://n:4222" is not a nats://host:port or tls://host:port URL`, nil, ""},
		{"nats no host", "id = a\nlogging.nats.url = nats://\n", `logging.nats.url: invalid config: "nats://" is not a nats://host:port`, nil, ""},
		{"nats user in url", "id = a\nlogging.nats.url = nats://u:p@n:4222\n", "logging.nats.url: invalid config: credentials in the URL are not accepted", nil, ""},
		{"nats creds and token", "id = a\nlogging.nats.url = nats://n:4222\nlogging.nats.creds = c\nlogging.nats.token_file = t\n", "logging.nats.creds: invalid config: logging.nats.creds and logging.nats.token_file exclude each other", nil, ""},
		{"nats bad pattern", "id = a\nlogging.nats.projects = web-[\n", `logging.nats.projects: invalid config: "web-[" is not a path.Match pattern`, nil, ""},
		{"nats stream prefix", "id = a\nlogging.nats.stream_prefix = A.B\n", "logging.nats.stream_prefix: invalid config: must be at most 32 of A-Z a-z 0-9 _ -", nil, ""},
		{"nats subject prefix", "id = a\nlogging.nats.subject_prefix = logs.*\n", "logging.nats.subject_prefix: invalid config: must be 1 to 4 dot-separated tokens", nil, ""},
		{"nats subject prefix empty token", "id = a\nlogging.nats.subject_prefix = logs..x\n", "logging.nats.subject_prefix: invalid config", nil, ""},
		{"nats window", "id = a\nlogging.nats.duplicate_window = 0s\n", "logging.nats.duplicate_window: invalid config: must be between 1s and 1d", nil, ""},
		{"nats window over age", "id = a\nlogging.nats.max_age = 1m\nlogging.nats.duplicate_window = 2h\n", "logging.nats.duplicate_window: invalid config: must not exceed logging.nats.max_age", nil, ""},
		{"nats replicas", "id = a\nlogging.nats.replicas = 7\n", "logging.nats.replicas: invalid config: must be between 1 and 5", nil, ""},
		{"nats ack timeout", "id = a\nlogging.nats.ack_timeout = 1ms\n", "logging.nats.ack_timeout: invalid config: must be between 100ms and 5m", nil, ""},
		{"nats start", "id = a\nlogging.nats.start = middle\n", "logging.nats.start: invalid config: must be oldest or newest", nil, ""},
		{"nats unknown key", "id = a\nlogging.nats.urls = nats://n:4222\n", "t.conf:2: logging.nats.urls: unknown key", nil, ""},
	}...)
}
