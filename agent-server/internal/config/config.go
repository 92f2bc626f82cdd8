// Package config reads agent-server's configuration file (conf/server.conf,
// kvconf format) into a Config, applies the defaults, resolves relative paths
// and checks every value.
//
// The keys of agent-server 1.5 keep their meaning (id, listen, cache_dir,
// cache_threshold, log_dir, log_size, log_rotate, connect_limit); grpc_listen
// and metrics.kafka.* belong to features not implemented and are accepted
// with a warning. Any other unknown key is an error naming the file and line.
// docs/configuration.md documents every key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/kvconf"
	"github.com/agentfleet/jkframe/logging"
	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/egress"
)

// ErrInvalid is wrapped by every error about a value out of its range or a
// missing required key.
var ErrInvalid = errors.New("invalid config")

// Config is the whole server configuration.
type Config struct {
	// ID is the cluster id (required); $NAME reads the environment.
	ID string `kv:"id,env"`
	// Listen is the HTTP / WebSocket port.
	Listen uint16 `kv:"listen"`
	// ListenAddr is the address the port is bound on ("" or 0.0.0.0 = all).
	ListenAddr string `kv:"listen_addr"`
	// GRPCListen is a 1.5 key of a feature not implemented: accepted, warned.
	GRPCListen string `kv:"grpc_listen"`

	// CacheDir holds spooled transfers; CacheThreshold (%) is the disk usage
	// of its file system above which disk-hungry calls are refused (507).
	CacheDir       string `kv:"cache_dir"`
	CacheThreshold uint   `kv:"cache_threshold"`
	// DataDir holds the SQLite database and the generated API token.
	DataDir string `kv:"data_dir"`

	LogDir    string      `kv:"log_dir"`
	LogSize   utils.Bytes `kv:"log_size"`
	LogRotate uint        `kv:"log_rotate"`
	LogLevel  string      `kv:"log_level"`
	LogTarget []string    `kv:"log_target"`

	// ConnectLimit is the agent handshakes admitted per second (0 = no
	// limit) and ConnectBurst how many may come at once (0 = ConnectLimit).
	ConnectLimit uint `kv:"connect_limit"`
	ConnectBurst uint `kv:"connect_burst"`
	// AllowLegacyAgents admits v1 agents: no enrollment token, no auth.v1
	// (only for ids without a per-agent secret; see hub.Options.AllowLegacy).
	AllowLegacyAgents bool `kv:"allow_legacy_agents"`

	Store   Store   `kv:"store"`
	API     API     `kv:"api"`
	Agent   Agent   `kv:"agent"`
	TLS     TLS     `kv:"tls"`
	Task    Task    `kv:"task"`
	Cluster Cluster `kv:"cluster"`
	Metrics Metrics `kv:"metrics"`

	HostMetrics HostMetrics `kv:"hostmetrics"`
	Logging     Logging     `kv:"logging"`
	Packages    Packages    `kv:"packages"`

	// GCPercent is the Go garbage collector's target (GOGC) for the server
	// process; the environment's GOGC, when set, wins. 50 instead of Go's 100
	// keeps the heap of thousands of idle agents' sessions closer to what is
	// live (≈ 2 kB less RSS per agent) for a GC cycle every few seconds.
	GCPercent uint `kv:"gc_percent"`
}

// Store selects the database.
type Store struct {
	Driver string `kv:"driver"` // sqlite or mysql
	DSN    string `kv:"dsn"`    // sqlite: file path (default <data_dir>/agent-server.db); mysql: required
}

// API configures the HTTP API.
type API struct {
	// Tokens are the operator tokens ("name:secret" or a bare secret).
	Tokens []string `kv:"tokens"`
	// ReadOnlyTokens hold the read scopes (authz.ReadOnlyScopes).
	ReadOnlyTokens []string `kv:"read_only_tokens"`
	// Scoped are the api.token.<name>.* groups: tokens with scopes, an
	// optional label selector and an optional expiry.
	Scoped []ScopedToken `kv:"-"`
	// MetricsToken, when set, is required by /metrics.
	MetricsToken string `kv:"metrics_token"`
	// MaxBody bounds request bodies (JSON); UploadMaxBody bounds file uploads.
	MaxBody       utils.Bytes `kv:"max_body"`
	UploadMaxBody utils.Bytes `kv:"upload_max_body"`
	// RateLimit is the requests per second allowed on expensive routes
	// (those that reach agents), RateBurst how many at once. 0 = no limit.
	RateLimit float64 `kv:"rate_limit"`
	RateBurst uint    `kv:"rate_burst"`
	// Timeout is the default wait for an agent's answer; MaxTimeout the
	// largest `timeout` a request may ask for.
	Timeout    utils.Duration `kv:"timeout"`
	MaxTimeout utils.Duration `kv:"max_timeout"`
	// URLAllow and URLDeny bound the URLs the server fetches for API callers
	// (upload url=): CIDRs, addresses, host names, *.domain patterns or the
	// keywords of egress.Keywords. URLDeny defaults to egress.DefaultDeny
	// (loopback, link-local, unspecified, metadata); an empty URLAllow
	// allows what is not denied.
	URLAllow []string `kv:"url_allow"`
	URLDeny  []string `kv:"url_deny"`
}

// Agent configures the agent side (/ws/agent).
type Agent struct {
	// Tokens are the enrollment tokens agents send on the upgrade request.
	Tokens []string `kv:"tokens"`
	// MaxFrame is the read limit per WebSocket frame.
	MaxFrame utils.Bytes `kv:"max_frame"`
	// SendQueueBytes bounds the bytes queued for one agent connection
	// (besides the hub's bound in messages).
	SendQueueBytes utils.Bytes `kv:"send_queue_bytes"`
}

// TLS enables HTTPS / WSS when both are set.
type TLS struct {
	Cert string `kv:"cert"`
	Key  string `kv:"key"`
}

// Task configures task storage.
type Task struct {
	// OutputCap bounds the output stored per task and agent.
	OutputCap utils.Bytes `kv:"output_cap"`
}

// Metrics records the 1.5 metrics.kafka.* keys found in the file: the
// feature is not implemented, so they are accepted with a warning.
type Metrics struct {
	KafkaKeys []string `kv:"-"`
}

// HostMetrics configures the reports of the metrics-agents
// (internal/hostmetrics, /api/metrics, /metrics/hosts).
type HostMetrics struct {
	// FlushInterval is how often pushed reports are written to the store
	// (two transactions per flush whatever the number of agents).
	FlushInterval utils.Duration `kv:"flush_interval"`
	// HistoryRetention is how long usage samples are kept; 0 keeps none.
	HistoryRetention utils.Duration `kv:"history_retention"`
	// HistoryInterval is the least time between two kept samples of one
	// agent; 0 keeps every pushed sample.
	HistoryInterval utils.Duration `kv:"history_interval"`
	// StaleIntervals: a host leaves /metrics/hosts after this many usage
	// intervals without a report.
	StaleIntervals uint `kv:"stale_intervals"`
	// MaxInterfaces, MaxMounts and MaxSensors cap the series per host.
	MaxInterfaces uint `kv:"max_interfaces"`
	MaxMounts     uint `kv:"max_mounts"`
	MaxSensors    uint `kv:"max_sensors"`
	// FleetConcurrency bounds the agents contacted at once by
	// PUT /api/metrics/status.
	FleetConcurrency uint `kv:"fleet_concurrency"`
	// RecentWindow is how much usage history each host keeps in memory
	// (GET /api/metrics/{id}/history, the console's charts); 0 keeps none.
	RecentWindow utils.Duration `kv:"recent_window"`
	// RecentStep is the least time between two in-memory samples.
	RecentStep utils.Duration `kv:"recent_step"`
	// MaxRecentHosts bounds the hosts with an in-memory history.
	MaxRecentHosts uint `kv:"max_recent_hosts"`
}

// Defaults of the keys that have one.
const (
	DefaultListen         = 13081
	DefaultListenAddr     = "127.0.0.1"
	DefaultCacheThreshold = 80
	DefaultConnectLimit   = 100
	DefaultMaxBody        = 1 << 20
	DefaultUploadMaxBody  = 1 << 30
	DefaultMaxFrame       = 16 << 20
	DefaultSendQueueBytes = 16 << 20
	DefaultOutputCap      = 16 << 20
	DefaultLogSize        = 50 << 20
	DefaultLogRotate      = 7
	DefaultGCPercent      = 50
	DefaultRateLimit      = 50
	DefaultTimeout        = 60e9
	DefaultMaxTimeout     = 3600e9

	DefaultHostFlushInterval    = 5e9
	DefaultHostHistoryRetention = 24 * 3600e9
	DefaultHostHistoryInterval  = 60e9
	DefaultHostStaleIntervals   = 3
	DefaultHostMaxInterfaces    = 32
	DefaultHostMaxMounts        = 32
	DefaultHostMaxSensors       = 64
	DefaultHostFleetConcurrency = 32
	DefaultHostRecentWindow     = 3600e9
	DefaultHostRecentStep       = 15e9
	DefaultHostMaxRecentHosts   = 100000
)

// Default returns the configuration with every default filled in and no id.
func Default() Config {
	return Config{
		Listen:         DefaultListen,
		ListenAddr:     DefaultListenAddr,
		CacheDir:       "cache",
		CacheThreshold: DefaultCacheThreshold,
		DataDir:        "data",
		LogDir:         "logs",
		LogSize:        DefaultLogSize,
		LogRotate:      DefaultLogRotate,
		LogLevel:       "info",
		LogTarget:      []string{"stdout", "file"},
		GCPercent:      DefaultGCPercent,
		ConnectLimit:   DefaultConnectLimit,
		Store:          Store{Driver: "sqlite"},
		API: API{
			MaxBody:       DefaultMaxBody,
			UploadMaxBody: DefaultUploadMaxBody,
			RateLimit:     DefaultRateLimit,
			Timeout:       DefaultTimeout,
			MaxTimeout:    DefaultMaxTimeout,
			URLDeny:       slices.Clone(egress.DefaultDeny),
		},
		Agent:    Agent{MaxFrame: DefaultMaxFrame, SendQueueBytes: DefaultSendQueueBytes},
		Task:     Task{OutputCap: DefaultOutputCap},
		Logging:  DefaultLogging(),
		Packages: Packages{MaxSize: DefaultPackagesMaxSize},
		Cluster:  Cluster{Lease: DefaultClusterLease, MemberGrace: DefaultClusterMemberGrace, LeaseLostClose: DefaultClusterLeaseLost},
		HostMetrics: HostMetrics{
			FlushInterval: DefaultHostFlushInterval, HistoryRetention: DefaultHostHistoryRetention,
			HistoryInterval: DefaultHostHistoryInterval, StaleIntervals: DefaultHostStaleIntervals,
			MaxInterfaces: DefaultHostMaxInterfaces, MaxMounts: DefaultHostMaxMounts, MaxSensors: DefaultHostMaxSensors,
			FleetConcurrency: DefaultHostFleetConcurrency,
			RecentWindow:     DefaultHostRecentWindow, RecentStep: DefaultHostRecentStep, MaxRecentHosts: DefaultHostMaxRecentHosts,
		},
	}
}

// Options tune Load and Parse.
type Options struct {
	// BaseDir resolves relative paths (cache_dir, data_dir, log_dir, tls.*,
	// a SQLite store.dsn). main passes the binary's directory.
	BaseDir string
	// Env looks up $NAME values of id; os.LookupEnv when nil.
	Env func(string) (string, bool)
	// Warn receives the warnings (accepted but unused keys).
	Warn func(string)
}

// Load reads the file at path.
func Load(path string, o Options) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("kvconf: %w", err)
	}
	return Parse(data, path, o)
}

// Parse reads configuration text; file names it in errors.
func Parse(data []byte, file string, o Options) (Config, error) {
	// The api.token.<name>.* keys are not fields: their entries are read
	// here and picked up when the decoder reports them as unknown.
	entries, err := kvconf.Parse(bytes.NewReader(data), file)
	if err != nil {
		return Config{}, err
	}
	byKey := make(map[string]kvconf.Entry, len(entries))
	for _, e := range entries {
		if strings.HasPrefix(e.Key, scopedPrefix) {
			byKey[e.Key] = e
		}
	}
	return load(func(c *Config, opts ...kvconf.Option) error {
		return kvconf.Unmarshal(data, c, append(opts, kvconf.File(file))...)
	}, byKey, o)
}

func load(decode func(*Config, ...kvconf.Option) error, scoped map[string]kvconf.Entry, o Options) (Config, error) {
	c := Default()
	st := newScopedReader(&c, o.Env)
	warn := o.Warn
	if warn == nil {
		warn = func(string) {}
	}
	var unknown []error
	opts := []kvconf.Option{
		kvconf.Strict(false),
		kvconf.Warn(func(err error) {
			var ke *kvconf.Error
			if errors.As(err, &ke) && strings.HasPrefix(ke.Key, scopedPrefix) {
				st.add(ke.File, scoped[ke.Key])
				return
			}
			if errors.As(err, &ke) && strings.HasPrefix(ke.Key, "metrics.kafka.") {
				c.Metrics.KafkaKeys = append(c.Metrics.KafkaKeys, ke.Key)
				warn(fmt.Sprintf("%s:%d: %s: accepted but not used (Kafka export is not implemented)", ke.File, ke.Line, ke.Key))
				return
			}
			unknown = append(unknown, err)
		}),
	}
	if o.Env != nil {
		opts = append(opts, kvconf.Env(o.Env))
	}
	if err := decode(&c, opts...); err != nil {
		return Config{}, err
	}
	if len(unknown) > 0 {
		return Config{}, errors.Join(unknown...)
	}
	if err := st.finish(); err != nil {
		return Config{}, err
	}
	if c.GRPCListen != "" {
		warn("grpc_listen: accepted but not used (the gRPC API is not implemented)")
	}
	if err := c.check(); err != nil {
		return Config{}, err
	}
	c.resolve(o.BaseDir)
	if err := c.checkClusterFiles(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", key, ErrInvalid, fmt.Sprintf(format, args...))
}

func (c *Config) check() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if strings.TrimSpace(c.ID) == "" {
		add(invalid("id", "required"))
	}
	if c.Listen == 0 {
		add(invalid("listen", "must be a port between 1 and 65535"))
	}
	if c.ListenAddr != "" && net.ParseIP(c.ListenAddr) == nil && !validHost(c.ListenAddr) {
		add(invalid("listen_addr", "%q is not an IP address or host name", c.ListenAddr))
	}
	if c.CacheThreshold > 100 {
		add(invalid("cache_threshold", "must be a percentage between 0 and 100, got %d", c.CacheThreshold))
	}
	if c.DataDir == "" {
		add(invalid("data_dir", "must not be empty"))
	}
	if c.LogRotate < 1 {
		add(invalid("log_rotate", "must be >= 1"))
	}
	if c.GCPercent < 10 || c.GCPercent > 1000 {
		add(invalid("gc_percent", "must be between 10 and 1000, got %d", c.GCPercent))
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		add(invalid("log_level", "must be one of debug, info, warn, error, got %q", c.LogLevel))
	}
	for _, t := range c.LogTarget {
		if t != "stdout" && t != "file" {
			add(invalid("log_target", "items must be stdout or file, got %q", t))
		}
	}
	switch c.Store.Driver {
	case "sqlite":
	case "mysql":
		if c.Store.DSN == "" {
			add(invalid("store.dsn", "required with store.driver = mysql"))
		}
	default:
		add(invalid("store.driver", "must be sqlite or mysql, got %q", c.Store.Driver))
	}
	if _, err := ParseTokens("agent.tokens", "agent", c.Agent.Tokens); err != nil {
		add(err)
	}
	if _, err := c.APITokens(); err != nil {
		add(err)
	}
	if c.API.MaxBody < 1<<10 {
		add(invalid("api.max_body", "must be at least 1K"))
	}
	if c.API.UploadMaxBody < 1<<10 {
		add(invalid("api.upload_max_body", "must be at least 1K"))
	}
	if c.API.RateLimit < 0 {
		add(invalid("api.rate_limit", "must be >= 0"))
	}
	if c.API.Timeout <= 0 || c.API.MaxTimeout < c.API.Timeout {
		add(invalid("api.timeout", "must be > 0 and <= api.max_timeout"))
	}
	if _, err := egress.New(c.API.URLAllow, nil); err != nil {
		add(invalid("api.url_allow", "%v", err))
	}
	if _, err := egress.New(nil, c.API.URLDeny); err != nil {
		add(invalid("api.url_deny", "%v", err))
	}
	if c.Agent.MaxFrame < 64<<10 || c.Agent.MaxFrame > 1<<30 {
		add(invalid("agent.max_frame", "must be between 64K and 1G"))
	}
	if c.Agent.SendQueueBytes < 64<<10 || c.Agent.SendQueueBytes > 1<<30 {
		add(invalid("agent.send_queue_bytes", "must be between 64K and 1G"))
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		add(invalid("tls", "tls.cert and tls.key must be set together"))
	}
	c.HostMetrics.check(add)
	c.Logging.check(add)
	c.Packages.check(add)
	c.checkCluster(add)
	return errors.Join(errs...)
}

func (h *HostMetrics) check(add func(error)) {
	if h.FlushInterval < utils.Duration(100*time.Millisecond) || h.FlushInterval > utils.Duration(time.Minute) {
		add(invalid("hostmetrics.flush_interval", "must be between 100ms and 1m"))
	}
	if h.HistoryRetention < 0 || h.HistoryRetention > utils.Duration(366*24*time.Hour) {
		add(invalid("hostmetrics.history_retention", "must be between 0 (no history) and 366d"))
	}
	if h.HistoryInterval < 0 || h.HistoryInterval > utils.Duration(24*time.Hour) {
		add(invalid("hostmetrics.history_interval", "must be between 0 (every sample) and 1d"))
	}
	if h.RecentWindow < 0 || h.RecentWindow > utils.Duration(24*time.Hour) {
		add(invalid("hostmetrics.recent_window", "must be between 0 (none) and 1d"))
	}
	if h.RecentStep < utils.Duration(time.Second) || h.RecentStep > utils.Duration(time.Hour) || time.Duration(h.RecentStep)%time.Second != 0 {
		add(invalid("hostmetrics.recent_step", "must be whole seconds between 1s and 1h"))
	} else if h.RecentWindow > 0 && h.RecentWindow/h.RecentStep > 8640 {
		add(invalid("hostmetrics.recent_step", "gives more than 8640 samples per host over hostmetrics.recent_window"))
	}
	if h.MaxRecentHosts < 1 || h.MaxRecentHosts > 1000000 {
		add(invalid("hostmetrics.max_recent_hosts", "must be between 1 and 1000000"))
	}
	if h.StaleIntervals < 2 || h.StaleIntervals > 100 {
		add(invalid("hostmetrics.stale_intervals", "must be between 2 and 100"))
	}
	for _, k := range []struct {
		key string
		v   uint
	}{{"max_interfaces", h.MaxInterfaces}, {"max_mounts", h.MaxMounts}, {"max_sensors", h.MaxSensors}, {"fleet_concurrency", h.FleetConcurrency}} {
		if k.v < 1 || k.v > 1024 {
			add(invalid("hostmetrics."+k.key, "must be between 1 and 1024"))
		}
	}
}

func validHost(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func (c *Config) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && base != "" {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.CacheDir)
	abs(&c.DataDir)
	abs(&c.Packages.Dir)
	abs(&c.LogDir)
	abs(&c.Logging.Dir)
	abs(&c.Logging.NATS.Creds)
	abs(&c.Logging.NATS.TokenFile)
	abs(&c.Logging.NATS.TLSCA)
	abs(&c.Cluster.NATSCreds)
	abs(&c.Cluster.NATSTokenFile)
	abs(&c.Cluster.NATSTLSCA)
	abs(&c.Cluster.TLSCA)
	abs(&c.TLS.Cert)
	abs(&c.TLS.Key)
	if c.Store.Driver == "sqlite" {
		abs(&c.Store.DSN)
	}
	if c.Cluster.Advertise != "" {
		c.Cluster.Advertise, _ = advertiseURL(c.Cluster.Advertise, c.TLSEnabled()) // checked
	}
	if c.ConnectBurst == 0 {
		c.ConnectBurst = c.ConnectLimit
	}
	if c.API.RateBurst == 0 {
		c.API.RateBurst = uint(max(1, c.API.RateLimit*2))
	}
}

// Addr is the host:port the HTTP server listens on.
func (c *Config) Addr() string {
	return net.JoinHostPort(c.ListenAddr, strconv.Itoa(int(c.Listen)))
}

// TLSEnabled reports whether the server serves HTTPS / WSS.
func (c *Config) TLSEnabled() bool { return c.TLS.Cert != "" && c.TLS.Key != "" }
