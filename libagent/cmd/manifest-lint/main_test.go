package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	good := write(t, dir, "good.yaml", "- key: task.n\n  type: uint\n  name: {zh: 数}\n  desc: {zh: 数}\n  max: 10\n")
	bad := write(t, dir, "bad.yaml", "- key: task.n\n  type: uint\n  name: {zh: 数}\n  desc: {zh: 数}\n  default: 11\n  max: 10\n")
	syntax := write(t, dir, "syntax.yaml", "- key: a\n  typo: x\n")
	okConf := write(t, dir, "ok.conf", "task.n = 3\nbasic.log.level = debug\n")
	badConf := write(t, dir, "bad.conf", "task.n = 30\nbasic.nope = 1\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"good", []string{good}, 0, ""},
		{"good with conf", []string{"-conf", okConf, good}, 0, ""},
		{"bad manifest", []string{bad}, 1, bad + ":1: task.n: default: 11 is above the maximum 10\n"},
		{"bad conf", []string{"-conf", badConf, good}, 1, badConf + ":1: task.n: 30 is above the maximum 10\n" + badConf + ":2: basic.nope: unknown key\n"},
		{"syntax", []string{syntax}, 1, syntax + ":2: manifest syntax: field typo not found\n"},
		{"without basic", []string{"-basic=false", "-conf", okConf, good}, 1, okConf + ":2: basic.log.level: unknown key\n"},
		{"markdown", []string{"-markdown", "-basic=false", good}, 0, "## `" + filepath.ToSlash(good) + "`\n\n" +
			"| key | type | default | allowed | enabled when | description |\n|---|---|---|---|---|---|\n" +
			"| `task.n` | uint | — | ≤ `10` | always | **数**: 数 |\n"},
		{"markdown of a bad manifest", []string{"-markdown", bad}, 1, ""},
		{"markdown of a syntax error", []string{"-markdown", syntax}, 1, ""},
		{"markdown with conf", []string{"-markdown", "-conf", okConf, good}, 2, ""},
		{"no args", nil, 2, ""},
		{"missing file", []string{filepath.Join(dir, "none.yaml")}, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.code || out.String() != tc.out {
				t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s", code, out.String(), errb.String(), tc.code, tc.out)
			}
			if code == 1 && tc.out == "" && errb.Len() == 0 {
				t.Fatal("exit 1 without a problem on stderr")
			}
			if code == 2 && !strings.Contains(errb.String(), "manifest-lint") {
				t.Fatalf("stderr %q", errb.String())
			}
		})
	}
}
