package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "server.conf")
	if err := os.WriteFile(bad, []byte("id = x\nlisten = 13081\nlistn = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(t.TempDir(), "single.conf")
	if err := os.WriteFile(single, []byte("id = x\nlisten = 13081\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args       []string
		code       int
		out, errSS string
	}{
		{[]string{"version"}, 0, "agent-server ", ""},
		{[]string{"--conf", bad, "version"}, 0, "agent-server ", ""},
		{nil, 2, "", "usage: agent-server"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"run", "extra"}, 2, "", "usage: agent-server"},
		{[]string{"--nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"run", "--conf", bad}, 1, "", "server.conf:3: listn: unknown key"},
		{[]string{"--conf", bad, "install"}, 1, "", "server.conf:3: listn: unknown key"},
		{[]string{"run", "--conf", filepath.Join(t.TempDir(), "missing.conf")}, 1, "", "missing.conf"},
		{[]string{"drain", "--conf", bad}, 1, "", "server.conf:3: listn: unknown key"},
		{[]string{"drain", "--conf", single}, 1, "", "drain: this server is not a cluster member"},
		{[]string{"drain", "--period", "soon"}, 2, "", "invalid value"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.HasPrefix(out.String(), tt.out) || !strings.Contains(errb.String(), tt.errSS) {
			t.Errorf("%q: %d out %q err %q; want %d %q %q", tt.args, code, out.String(), errb.String(), tt.code, tt.out, tt.errSS)
		}
	}
}
