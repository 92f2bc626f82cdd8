package agenttest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfleet/libagent/manifest"
)

// ShippedConfig checks the files an agent ships in dir (its conf folder):
// manifest.yaml, merged with the basic.* items, is valid, and agent.conf
// passes it, so that the two cannot drift apart. It returns the merged
// manifest and agent.conf's bytes, for the caller to hold them against its
// DefaultConfig. Problems are reported against conf/manifest.yaml and
// conf/agent.conf.
func ShippedConfig(t testing.TB, dir string) (*manifest.Manifest, []byte) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mf, conf := read("manifest.yaml"), read("agent.conf")
	own, err := manifest.Parse(bytes.NewReader(mf), "conf/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := manifest.Merge(manifest.Basic(), own)
	if err := m.Validate().Err(); err != nil {
		t.Fatalf("conf/manifest.yaml:\n%v", err)
	}
	probs, err := m.CheckConfig(bytes.NewReader(conf), "conf/agent.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := probs.Err(); err != nil {
		t.Fatalf("conf/agent.conf:\n%v", err)
	}
	return m, conf
}
