package agenttest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestShippedConfig(t *testing.T) {
	dir := t.TempDir()
	mf := `- key: demo.greeting
  type: string
  name: {zh: 问候语, en: Greeting}
  desc: {zh: 问候语。, en: The greeting.}
  default: hello
  required: false
  category: demo
`
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(mf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "agent.conf"), []byte("basic.server = 127.0.0.1:13081\ndemo.greeting = hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, conf := ShippedConfig(t, dir)
	if m.Lookup("demo.greeting") == nil || m.Lookup("basic.server") == nil {
		t.Fatal("the merged manifest lacks its own or the basic items")
	}
	if string(conf) != "basic.server = 127.0.0.1:13081\ndemo.greeting = hi\n" {
		t.Fatalf("conf = %q", conf)
	}
}
