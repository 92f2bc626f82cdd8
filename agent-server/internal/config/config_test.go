package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestShippedConf(t *testing.T) {
	var warns []string
	c, err := Load("../../conf/server.conf", Options{BaseDir: "/opt/as", Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	want := Default()
	want.ID = "agent-server"
	want.CacheDir, want.DataDir, want.LogDir = "/opt/as/cache", "/opt/as/data", "/opt/as/logs"
	want.ConnectBurst = 100
	want.API.RateBurst = 100
	if !reflect.DeepEqual(c, want) {
		t.Errorf("shipped conf\n got %+v\nwant %+v", c, want)
	}
	if c.Addr() != "127.0.0.1:13081" || c.TLSEnabled() {
		t.Errorf("Addr %s TLS %v", c.Addr(), c.TLSEnabled())
	}
}

// parseCase is a case of TestParse (and a seed of FuzzParse).
type parseCase struct {
	name, in string
	err      string // substring; "" = ok
	check    func(Config) bool
	warn     string
}

var parseTests = []parseCase{
	{"minimal", "id = s1\n", "", func(c Config) bool {
		return c.Listen == 13081 && c.ListenAddr == "127.0.0.1" && c.Store.Driver == "sqlite"
	}, ""},
	{"env id", "id = $AS_ID\n", "", func(c Config) bool { return c.ID == "from-env" }, ""},
	{"env id unset", "id = $NOPE\n", "t.conf:1: id: environment variable NOPE is not set", nil, ""},
	{"missing id", "listen = 1\n", "id: invalid config: required", nil, ""},
	{"unknown key", "id = a\nlistn = 1\n", "t.conf:2: listn: unknown key", nil, ""},
	{"kafka accepted", "id = a\nmetrics.kafka.addr = k:9092\nmetrics.kafka.topic = m\n", "", func(c Config) bool { return len(c.Metrics.KafkaKeys) == 2 }, "t.conf:2: metrics.kafka.addr: accepted but not used"},
	{"grpc accepted", "id = a\ngrpc_listen = 13082\n", "", nil, "grpc_listen: accepted but not used"},
	{"cluster on sqlite refused", "id = a\ncluster.name = c\ncluster.nats_url = nats://x:4222\ncluster.advertise = 10.0.0.5:13081\n", "store.driver: invalid config: a cluster (cluster.* is set) needs store.driver = mysql", nil, ""},
	{"port zero", "id = a\nlisten = 0\n", "listen: invalid config: must be a port between 1 and 65535", nil, ""},
	{"port overflow", "id = a\nlisten = 70000\n", "t.conf:2: listen", nil, ""},
	{"bad listen addr", "id = a\nlisten_addr = a b\n", `listen_addr: invalid config: "a b" is not an IP address or host name`, nil, ""},
	{"threshold", "id = a\ncache_threshold = 101\n", "cache_threshold: invalid config: must be a percentage between 0 and 100, got 101", nil, ""},
	{"driver", "id = a\nstore.driver = pg\n", `store.driver: invalid config: must be sqlite or mysql, got "pg"`, nil, ""},
	{"mysql needs dsn", "id = a\nstore.driver = mysql\n", "store.dsn: invalid config: required with store.driver = mysql", nil, ""},
	{"short token", "id = a\napi.tokens = ops:short\n", "api.tokens: invalid config: item 1 (ops): token must be at least 16 characters", nil, ""},
	{"bad token name", "id = a\napi.tokens = \"o p:0123456789abcdef\"\n", `api.tokens: invalid config: item 1: token name "o p" must be`, nil, ""},
	{"dup token name", "id = a\napi.tokens = x:0123456789abcdef, x:0123456789abcdeg\n", `api.tokens: invalid config: item 2: token name "x" used twice`, nil, ""},
	{"tokens ok", "id = a\napi.tokens = ops:0123456789abcdef, 0123456789abcdeX\nagent.tokens = 0123456789abcdeY\n", "", func(c Config) bool { return len(c.API.Tokens) == 2 && len(c.Agent.Tokens) == 1 }, ""},
	{"log level", "id = a\nlog_level = loud\n", `log_level: invalid config: must be one of debug, info, warn, error, got "loud"`, nil, ""},
	{"gc percent", "id = a\ngc_percent = 5\n", `gc_percent: invalid config: must be between 10 and 1000, got 5`, nil, ""},
	{"log target", "id = a\nlog_target = stdout, syslog\n", `log_target: invalid config: items must be stdout or file, got "syslog"`, nil, ""},
	{"rotate", "id = a\nlog_rotate = 0\n", "log_rotate: invalid config: must be >= 1", nil, ""},
	{"log size", "id = a\nlog_size = 10Q\n", "t.conf:2: log_size", nil, ""},
	{"frame", "id = a\nagent.max_frame = 1K\n", "agent.max_frame: invalid config: must be between 64K and 1G", nil, ""},
	{"send queue small", "id = a\nagent.send_queue_bytes = 1K\n", "agent.send_queue_bytes: invalid config: must be between 64K and 1G", nil, ""},
	{"send queue default", "id = a\n", "", func(c Config) bool { return c.Agent.SendQueueBytes == DefaultSendQueueBytes }, ""},
	{"send queue set", "id = a\nagent.send_queue_bytes = 32M\n", "", func(c Config) bool { return c.Agent.SendQueueBytes == 32<<20 }, ""},
	{"send queue big", "id = a\nagent.send_queue_bytes = 2G\n", "agent.send_queue_bytes: invalid config: must be between 64K and 1G", nil, ""},
	{"tls half", "id = a\ntls.cert = c.pem\n", "tls: invalid config: tls.cert and tls.key must be set together", nil, ""},
	{"tls", "id = a\ntls.cert = c.pem\ntls.key = /k.pem\n", "", func(c Config) bool { return c.TLS.Cert == "/base/c.pem" && c.TLS.Key == "/k.pem" && c.TLSEnabled() }, ""},
	{"timeouts", "id = a\napi.timeout = 2h\n", "api.timeout: invalid config: must be > 0 and <= api.max_timeout", nil, ""},
	{"burst defaults", "id = a\nconnect_limit = 7\napi.rate_limit = 0.5\n", "", func(c Config) bool { return c.ConnectBurst == 7 && c.API.RateBurst == 1 }, ""},
	{"sqlite dsn resolved", "id = a\nstore.dsn = x.db\n", "", func(c Config) bool { return c.Store.DSN == "/base/x.db" }, ""},
	{"mysql dsn kept", "id = a\nstore.driver = mysql\nstore.dsn = root@tcp(h:3306)/db\n", "", func(c Config) bool { return c.Store.DSN == "root@tcp(h:3306)/db" }, ""},
	{"no equals", "id = a\nlisten\n", "t.conf:2", nil, ""},
	{"set twice", "id = a\nid = b\n", "t.conf:2: id", nil, ""},
	{"legacy", "id = a\nallow_legacy_agents = yes\n", "t.conf:2: allow_legacy_agents", nil, ""},
	{"scoped token", "id = a\napi.token.deploy.secret = 0123456789abcdef\napi.token.deploy.scopes = exec:run, agents:read\napi.token.deploy.selector = env=prod, team=web\napi.token.deploy.expires = 2027-06-30\n", "", func(c Config) bool {
		ts, err := c.APITokens()
		return err == nil && len(ts) == 1 && ts[0].Name == "deploy" && fmt.Sprint(ts[0].Scopes) == "[agents:read exec:run]" &&
			ts[0].Selector == "env=prod, team=web" && ts[0].Expires.Equal(time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC))
	}, ""},
	{"scoped token env secret", "id = a\napi.token.ci.v2.secret = ${CI_TOKEN}\napi.token.ci.v2.scopes = tasks:read\n", "", func(c Config) bool {
		ts, err := c.APITokens()
		return err == nil && len(ts) == 1 && ts[0].Name == "ci.v2" && ts[0].Secret == "ci-secret-0123456789"
	}, ""},
	{"legacy roles map onto scopes", "id = a\napi.tokens = ops:0123456789abcdef\napi.read_only_tokens = ro:0123456789abcdeX\n", "", func(c Config) bool {
		ts, err := c.APITokens()
		return err == nil && len(ts) == 2 && fmt.Sprint(ts[0].Scopes) == "[admin]" &&
			fmt.Sprint(ts[1].Scopes) == "[agents:read metrics:read exec:read tasks:read audit:read packages:read]"
	}, ""},
	{"packages", "id = a\npackages.dir = pk\npackages.max_size = 10G\n", "", func(c Config) bool {
		return c.Packages.Dir == "/base/pk" && c.Packages.MaxSize == 10<<30
	}, ""},
	{"packages max_size too small", "id = a\npackages.max_size = 512\n", "packages.max_size: invalid config: must be between 1K and 1T", nil, ""},
	{"scoped token no secret", "id = a\napi.token.x.scopes = admin\n", "t.conf:2: api.token.x: invalid config: missing api.token.x.secret", nil, ""},
	{"scoped token no scopes", "id = a\napi.token.x.secret = 0123456789abcdef\n", "t.conf:2: api.token.x: invalid config: missing api.token.x.scopes", nil, ""},
	{"scoped token bad scope", "id = a\napi.token.x.secret = 0123456789abcdef\napi.token.x.scopes = exec:all\n", `t.conf:2: api.token.x: invalid config: scopes: unknown scope "exec:all" (known: agents:read,`, nil, ""},
	{"scoped token short", "id = a\napi.token.x.secret = short\napi.token.x.scopes = admin\n", "t.conf:2: api.token.x: invalid config: secret: token must be at least 16 characters", nil, ""},
	{"scoped token bad selector", "id = a\napi.token.x.secret = 0123456789abcdef\napi.token.x.scopes = exec:run\napi.token.x.selector = a,,b\n", "t.conf:2: api.token.x: invalid config: selector: label selector: empty term", nil, ""},
	{"scoped token fleet-wide with selector", "id = a\napi.token.x.secret = 0123456789abcdef\napi.token.x.scopes = admin\napi.token.x.selector = env=prod\n", "t.conf:2: api.token.x: invalid config: scope admin is fleet-wide and cannot be limited by a selector", nil, ""},
	{"scoped token bad field", "id = a\napi.token.x.secret = 0123456789abcdef\napi.token.x.scope = admin\n", `t.conf:3: api.token.x.scope: invalid config: unknown key "scope" (want one of secret, scopes, selector, expires)`, nil, ""},
	{"scoped token no field", "id = a\napi.token.x = 1\n", "t.conf:2: api.token.x: invalid config: want api.token.<name>.<key>", nil, ""},
	{"scoped token bad name", "id = a\napi.token.a/b.secret = 0123456789abcdef\n", "t.conf:2", nil, ""},
	{"scoped token bad expiry", "id = a\napi.token.x.expires = soon\n", `t.conf:2: api.token.x.expires: invalid config: "soon" is not an RFC 3339 time or a date`, nil, ""},
	{"scoped token env unset", "id = a\napi.token.x.secret = $NOPE\n", "t.conf:2: api.token.x.secret: invalid config: environment variable NOPE is not set", nil, ""},
	{"token names unique across kinds", "id = a\napi.tokens = x:0123456789abcdef\napi.token.x.secret = 0123456789abcdeX\napi.token.x.scopes = agents:read\n", `api.token.x: invalid config: token name "x" is also used by api.tokens`, nil, ""},
}

func env(k string) (string, bool) {
	switch k {
	case "AS_ID":
		return "from-env", true
	case "CI_TOKEN":
		return "ci-secret-0123456789", true
	}
	return "", false
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			var warns []string
			c, err := Parse([]byte(tt.in), "t.conf", Options{BaseDir: "/base", Env: env, Warn: func(s string) { warns = append(warns, s) }})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("check failed: %+v", c)
			}
			if tt.warn != "" && (len(warns) == 0 || !strings.Contains(strings.Join(warns, "\n"), tt.warn)) {
				t.Errorf("warnings %q, want %q", warns, tt.warn)
			}
			if tt.warn == "" && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse([]byte(s), "f.conf", Options{Env: env})
		if err != nil {
			return
		}
		if c.ID == "" || c.Listen == 0 || c.LogRotate < 1 {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
		toks, err := c.APITokens()
		if err != nil {
			t.Fatalf("accepted a config whose tokens fail: %v", err)
		}
		for _, tk := range toks {
			if len(tk.Scopes) == 0 || len(tk.Secret) < MinTokenLen {
				t.Fatalf("accepted token %+v", tk)
			}
		}
	})
}

func TestGeneratedToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tok, path, created, err := GeneratedToken(dir, TokenFile, GeneratedTokenName)
	if err != nil || !created || tok.Name != "generated" || len(tok.Secret) != 43 || path != filepath.Join(dir, "api-token") {
		t.Fatalf("first: %+v %s %v %v", tok, path, created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	tok2, _, created, err := GeneratedToken(dir, TokenFile, GeneratedTokenName)
	if err != nil || created || !reflect.DeepEqual(tok2, tok) {
		t.Fatalf("second: %+v %v %v", tok2, created, err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := GeneratedToken(dir, TokenFile, GeneratedTokenName); err == nil || !strings.Contains(err.Error(), "shorter than 16 characters") {
		t.Fatalf("short file: %v", err)
	}
	if a, b := NewSecret(), NewSecret(); a == b {
		t.Fatal("secrets repeat")
	}
}
