package agent

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/kvconf"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/manifest"
)

const (
	confDir  = "../../conf"
	confPath = confDir + "/agent.conf"
)

// The manifest (merged with basic.*) is valid, and the shipped config
// passes it: the two cannot drift apart.
func TestManifestAndConfig(t *testing.T) {
	m, _ := agenttest.ShippedConfig(t, confDir)
	// Every own key of the config struct is in the manifest, with the
	// default DefaultConfig has.
	def := DefaultConfig()
	want := map[string]string{
		"exec.max_tasks":          "16",
		"exec.kill_grace":         def.Exec.KillGrace.String(),
		"exec.drain_timeout":      def.Exec.DrainTimeout.String(),
		"exec.shell_idle_timeout": def.Exec.ShellIdleTimeout.String(),
		"file.temp_dir":           def.File.TempDir,
		"install.dpkg_args":       def.Install.DpkgArgs,
		"install.rpm_args":        def.Install.RPMArgs,
		"install.exe_flags":       def.Install.ExeFlags,
	}
	for key, v := range want {
		it := m.Lookup(key)
		if it == nil || it.Default == nil {
			t.Errorf("%s: not in the manifest (or no default)", key)
			continue
		}
		d := *it.Default
		if it.Type == "duration" {
			pd, err := time.ParseDuration(d)
			if err != nil {
				t.Errorf("%s: default %q: %v", key, d, err)
			}
			d = pd.String()
		}
		if d != v {
			t.Errorf("%s: manifest default %q, DefaultConfig %q", key, d, v)
		}
	}
	if got := len(m.Items) - len(manifest.Basic().Items); got != len(want) {
		t.Errorf("manifest has %d own items, the config struct %d", got, len(want))
	}
}

// conf/agent.conf decodes (strictly) to DefaultConfig.
func TestShippedConfigIsDefault(t *testing.T) {
	got := DefaultConfig()
	if err := kvconf.Load(confPath, &got); err != nil {
		t.Fatal(err)
	}
	// An empty list value decodes to an empty, non-nil slice.
	if len(got.Basic.Labels) == 0 {
		got.Basic.Labels = nil
	}
	if len(got.Basic.Limit.DiskLimit) == 0 {
		got.Basic.Limit.DiskLimit = nil
	}
	if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("conf/agent.conf decodes to\n%+v\nwant the defaults\n%+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"defaults", func(*Config) {}, ""},
		{"max tasks 0", func(c *Config) { c.Exec.MaxTasks = 0 }, "invalid config: exec.max_tasks = 0: must be 1…48"},
		{"max tasks 49", func(c *Config) { c.Exec.MaxTasks = 49 }, "invalid config: exec.max_tasks = 49: must be 1…48"},
		{"max tasks 48", func(c *Config) { c.Exec.MaxTasks = 48 }, ""},
		{"grace short", func(c *Config) { c.Exec.KillGrace = time.Millisecond }, "invalid config: exec.kill_grace = 1ms: must be 100ms…1m"},
		{"grace long", func(c *Config) { c.Exec.KillGrace = time.Hour }, "invalid config: exec.kill_grace = 1h0m0s: must be 100ms…1m"},
		{"drain zero", func(c *Config) { c.Exec.DrainTimeout = 0 }, "invalid config: exec.drain_timeout = 0s: must be 10ms…1m"},
		{"shell idle never", func(c *Config) { c.Exec.ShellIdleTimeout = 0 }, ""},
		{"shell idle negative", func(c *Config) { c.Exec.ShellIdleTimeout = -time.Second }, "invalid config: exec.shell_idle_timeout = -1s: must be 0 (never) or up to 7d"},
		{"shell idle 8d", func(c *Config) { c.Exec.ShellIdleTimeout = 8 * 24 * time.Hour }, "invalid config: exec.shell_idle_timeout = 192h0m0s: must be 0 (never) or up to 7d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate = %v, want %q", err, tc.err)
			}
		})
	}
}
