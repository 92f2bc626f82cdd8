package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{in: ""},
		{in: "current-context: a\ncontexts:\n  - name: a\n    server: http://h:1\n    token: t\n"},
		{in: "contexts:\n  - name: a\n    server: http://h:1\n  - name: b\n    server: https://x\n    ca-file: /ca.pem\n    insecure-skip-tls-verify: true\n"},
		{in: "contexts:\n  - name: a\n    server: x\n    password: p\n", err: "field password not found"},
		{in: "contexts:\n  - name: a\n  - name: a\n", err: `context "a" appears twice`},
		{in: "contexts:\n  - name: 'a b'\n", err: "context name"},
		{in: "contexts:\n  - name: ''\n", err: "context name"},
		{in: "current-context: z\ncontexts:\n  - name: a\n", err: `current-context "z" is not among`},
		{in: "contexts: 5\n", err: "cannot unmarshal"},
		{in: "\t- x", err: "yaml"},
	} {
		_, err := Parse([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("current-context: a\ncontexts:\n  - name: a\n    server: http://h:1\n    token: t\n")
	f.Add("contexts:\n  - name: a\n  - name: a\n")
	f.Add("x: [")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse([]byte(in))
		if err != nil {
			return
		}
		for _, x := range c.Contexts {
			if ValidName(x.Name) != nil {
				t.Fatalf("invalid name %q accepted", x.Name)
			}
		}
	})
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "config.yaml")
	f, warn, err := Load(path)
	if err != nil || warn != "" || len(f.Contexts) != 0 {
		t.Fatalf("missing file: %+v %q %v", f, warn, err)
	}
	f.Put(Context{Name: "b", Server: "http://b:1, http://c:1", Token: "tb"})
	f.Put(Context{Name: "a", Server: "http://a:1", Token: "ta"})
	f.Put(Context{Name: "b", Server: "http://b:2", Token: "tb2"})
	f.Current = "b"
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	g, warn, err := Load(path)
	if err != nil || warn != "" {
		t.Fatalf("load: %q %v", warn, err)
	}
	if len(g.Contexts) != 2 || g.Contexts[0].Name != "a" || g.Current != "b" {
		t.Fatalf("got %+v", g)
	}
	if c, _ := g.Get("b"); c.Server != "http://b:2" || c.Token != "tb2" {
		t.Errorf("b = %+v", c)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
			}
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, warn, _ := Load(path); !strings.Contains(warn, "chmod 600") {
			t.Errorf("no warning for mode 0644: %q", warn)
		}
	}
	if !g.Delete("b") || g.Current != "" || g.Delete("b") {
		t.Errorf("delete: %+v", g)
	}
	if got := (Context{Server: " http://a:1 ,, http://b:2 "}).Servers(); len(got) != 2 || got[1] != "http://b:2" {
		t.Errorf("servers: %q", got)
	}
}

func TestPath(t *testing.T) {
	p, err := Path(func(k string) string { return map[string]string{"AGENTCTL_CONFIG": "/x/c.yaml"}[k] })
	if err != nil || p != "/x/c.yaml" {
		t.Errorf("%s %v", p, err)
	}
	p, err = Path(func(string) string { return "" })
	if err == nil && !strings.HasSuffix(p, filepath.Join("agentctl", "config.yaml")) {
		t.Errorf("%s", p)
	}
}
