package libagent

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/utils"
)

// MinMonitorInterval is the floor of basic.monitor.interval.
const MinMonitorInterval = 5 * time.Second

// Basic holds the basic.* keys every agent's config has (config.md). An
// agent's config struct has it as a field tagged kv:"basic":
//
//	type Config struct {
//		Basic libagent.Basic `kv:"basic"`
//		Greeting string      `kv:"greeting"`
//	}
type Basic struct {
	// ID is the agent id; empty asks the server to assign one (kept in the
	// state file). $NAME reads the environment; $HOSTNAME and $IP are
	// special.
	ID string `kv:"id,env"`
	// Server is host:port (ws), ws://host:port or wss://host:port.
	Server string `kv:"server,env"`
	// Token is the enrollment token, sent as "Authorization: Bearer".
	Token string `kv:"token"`
	// TLS configures wss:// connections.
	TLS TLS `kv:"tls"`
	// Labels are k=v pairs the server can select agents on.
	Labels []string `kv:"labels"`
	// Log configures logging.
	Log Log `kv:"log"`
	// Monitor configures the type-7 self-report.
	Monitor Monitor `kv:"monitor"`
	// Limit holds the resource limits (applied at start-up).
	Limit LimitConfig `kv:"limit"`
	// Upgrade configures self-update (docs/upgrade.md).
	Upgrade Upgrade `kv:"upgrade"`
}

// TLS is basic.tls.*.
type TLS struct {
	// CA is a PEM bundle verifying the server; system roots when empty.
	CA string `kv:"ca"`
	// InsecureSkipVerify disables verification (labs only; logged).
	InsecureSkipVerify bool `kv:"insecure_skip_verify"`
}

// Log is basic.log.*.
type Log struct {
	Target []string    `kv:"target"` // stdout, file
	Dir    string      `kv:"dir"`    // relative to the binary's directory
	Size   utils.Bytes `kv:"size"`   // rotate at this size
	Rotate uint        `kv:"rotate"` // rotated files kept, ≥ 1
	Level  string      `kv:"level"`  // debug, info, warn, error
}

// Monitor is basic.monitor.*.
type Monitor struct {
	Enabled  bool           `kv:"enabled"`
	Interval utils.Duration `kv:"interval"` // ≥ MinMonitorInterval
}

// DefaultBasic returns the defaults of config.md.
func DefaultBasic() Basic {
	return Basic{
		Server:  "127.0.0.1:13081",
		Log:     Log{Target: []string{"stdout"}, Dir: "./logs", Size: 10 << 20, Rotate: 7, Level: "info"},
		Monitor: Monitor{Enabled: true, Interval: utils.Duration(30 * time.Second)},
		Upgrade: Upgrade{Restart: "auto"},
	}
}

// Config errors, for errors.Is.
var (
	// ErrNoBasic: Agent.Config is not a pointer to a struct with a Basic field.
	ErrNoBasic = errors.New("agent config has no libagent.Basic field")
	// ErrInvalidConfig: a basic.* value is out of its range.
	ErrInvalidConfig = errors.New("invalid config")
)

// findBasic returns the Basic inside cfg: cfg itself when it is a *Basic,
// else the first field of type Basic (named or embedded) of the struct cfg
// points to.
func findBasic(cfg any) (*Basic, error) {
	if b, ok := cfg.(*Basic); ok && b != nil {
		return b, nil
	}
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: got %T, want a pointer to a struct", ErrNoBasic, cfg)
	}
	v = v.Elem()
	bt := reflect.TypeFor[Basic]()
	for i := range v.NumField() {
		if v.Type().Field(i).Type == bt {
			return v.Field(i).Addr().Interface().(*Basic), nil
		}
	}
	return nil, fmt.Errorf("%w: %T", ErrNoBasic, cfg)
}

// validate checks the basic.* values and returns the warnings of values it
// corrected.
func (b *Basic) validate() (warnings []string, err error) {
	if _, err := ServerURL(b.Server); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := b.Upgrade.validate(); err != nil {
		return nil, err
	}
	for _, t := range b.Log.Target {
		if t != "stdout" && t != "file" {
			return nil, fmt.Errorf("%w: basic.log.target %q: want stdout or file", ErrInvalidConfig, t)
		}
	}
	if !slices.Contains([]string{"", "debug", "info", "warn", "error"}, strings.ToLower(b.Log.Level)) {
		return nil, fmt.Errorf("%w: basic.log.level %q: want debug, info, warn or error", ErrInvalidConfig, b.Log.Level)
	}
	if b.Log.Rotate < 1 {
		warnings = append(warnings, fmt.Sprintf("basic.log.rotate %d raised to 1", b.Log.Rotate))
		b.Log.Rotate = 1
	}
	if _, err := parseLabels(b.Labels); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if time.Duration(b.Monitor.Interval) < MinMonitorInterval {
		warnings = append(warnings, fmt.Sprintf("basic.monitor.interval %s raised to the minimum %s", b.Monitor.Interval, utils.Duration(MinMonitorInterval)))
		b.Monitor.Interval = utils.Duration(MinMonitorInterval)
	}
	return warnings, nil
}

// parseLabels turns "k=v" items into a map.
func parseLabels(items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(strings.TrimSpace(it), "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("basic.labels item %q: want k=v", it)
		}
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}
