package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeygenSignVerify: the commands make and check the .sig files
// agents verify; a changed file or another key fails.
func TestKeygenSignVerify(t *testing.T) {
	dir := t.TempDir()
	key, other := filepath.Join(dir, "release.key"), filepath.Join(dir, "other.key")
	for _, k := range []string{key, other} {
		if err := run([]string{"keygen", k}, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if err := run([]string{"keygen", key}, io.Discard); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Errorf("keygen over an existing key: %v", err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode: %v %v", fi.Mode(), err)
	}
	bin := filepath.Join(dir, "exec-agent_1.0.0_linux_amd64")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"sign", key, bin}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"verify", key + ".pub", bin}, io.Discard); err != nil {
		t.Errorf("verify: %v", err)
	}
	if err := run([]string{"verify", other + ".pub", bin}, io.Discard); err == nil {
		t.Error("verify with another key passed")
	}
	if err := os.WriteFile(bin, []byte("binarY"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"verify", key + ".pub", bin}, io.Discard); err == nil {
		t.Error("verify of a changed file passed")
	}
	for _, args := range [][]string{nil, {"sign"}, {"sign", key}, {"frobnicate", "x"}, {"sign", filepath.Join(dir, "nope"), bin}} {
		if err := run(args, io.Discard); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}
