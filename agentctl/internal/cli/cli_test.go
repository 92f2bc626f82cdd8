package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/goleak"

	"github.com/agentfleet/agentctl/internal/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// run runs agentctl in-process with env and returns stdout, stderr and
// the exit code.
func run(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &App{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(k string) string { return env[k] }, IsTerminal: func(any) bool { return false }}
	code := a.Run(context.Background(), args)
	return out.String(), errb.String(), code
}

// commands lists every command path of the tree ("agents ls").
func commands(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	path := append(append([]string(nil), prefix...), c.Name())
	out = append(out, path)
	for _, sub := range c.Commands() {
		if sub.Name() == "help" {
			continue
		}
		out = append(out, commands(sub, path)...)
	}
	return out
}

// TestHelpGolden keeps the --help of every command in testdata/help:
// go test -run TestHelpGolden -update rewrites them.
func TestHelpGolden(t *testing.T) {
	a := &App{Getenv: func(string) string { return "" }, IsTerminal: func(any) bool { return false }}
	paths := commands(a.Root(), nil)
	if len(paths) < 30 {
		t.Fatalf("only %d commands found", len(paths))
	}
	seen := map[string]bool{}
	for _, p := range paths {
		args := append(p[1:], "--help")
		out, errOut, code := run(t, nil, args...)
		if code != 0 || errOut != "" {
			t.Errorf("%s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
			continue
		}
		name := strings.Join(p, "_") + ".txt"
		seen[name] = true
		golden := filepath.Join("testdata", "help", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Errorf("%s: %v (go test -run TestHelpGolden -update)", strings.Join(p, " "), err)
			continue
		}
		if out != string(want) {
			t.Errorf("%s --help differs from %s (go test -run TestHelpGolden -update):\n%s", strings.Join(p, " "), golden, out)
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "help", "*.txt"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			if *update {
				os.Remove(f)
			} else {
				t.Errorf("%s: no such command any more (go test -run TestHelpGolden -update)", f)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	env := map[string]string{"AGENTCTL_CONFIG": filepath.Join(t.TempDir(), "c.yaml")}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"nosuch"}, ExitUsage, "unknown command"},
		{[]string{"agents", "ls", "--nosuch"}, ExitUsage, "unknown flag: --nosuch"},
		{[]string{"agents", "ls", "-o", "xml"}, ExitUsage, "-o xml: want one of table, wide, json, yaml"},
		{[]string{"agents", "get"}, ExitUsage, "get needs 1 argument(s), got 0"},
		{[]string{"agents", "label", "a1", "bad key=v"}, ExitUsage, "not a valid label key"},
		{[]string{"run", "a1", "uname"}, ExitUsage, "put the command after --"},
		{[]string{"run", "a1", "--"}, ExitUsage, "no command after --"},
		{[]string{"run", "--", "uname"}, ExitUsage, "no agents: give IDs or -l SELECTOR"},
		{[]string{"run", "a1", "-l", "x=y", "--", "uname"}, ExitUsage, "give agent IDs or -l/--os, not both"},
		{[]string{"run", "-l", "x", "--concurrency", "ten", "--", "uname"}, ExitUsage, "--concurrency \"ten\": want N or N%"},
		{[]string{"run", "a1", "--auth", "su", "--", "id"}, ExitUsage, "--auth needs --user"},
		{[]string{"run", "a1", "-e", "NOEQUALS", "--", "id"}, ExitUsage, "--env \"NOEQUALS\": want K=V"},
		{[]string{"install", "a1"}, ExitUsage, "give --uri NAME"},
		{[]string{"install", "a1", "--uri", "a.deb", "--url", "https://h/a.deb"}, ExitUsage, "give --uri or --url, not both"},
		{[]string{"install", "--uri", "a.deb"}, ExitUsage, "no agents: give IDs or -l SELECTOR"},
		{[]string{"install", "a1", "--uri", "a.deb", "--pass-stdin"}, ExitUsage, "--pass-stdin needs --auth"},
		{[]string{"install", "a1", "--uri", "a.deb", "--auth", "sudo"}, ExitUsage, "--auth needs --user"},
		{[]string{"install", "a1", "--uri", "a.deb", "-e", "K=V"}, ExitUsage, "--env and --workdir do not apply"},
		{[]string{"upgrade", "a1", "--version", "2.0.0"}, ExitUsage, "--type: which type of agent to upgrade"},
		{[]string{"upgrade", "a1", "--type", "exec-agent"}, ExitUsage, "give --version V"},
		{[]string{"upgrade", "a1", "--type", "exec-agent", "--version", "2", "--package", "p"}, ExitUsage, "give --version or --package, not both"},
		{[]string{"upgrade", "--type", "exec-agent", "--version", "2"}, ExitUsage, "no agents: give IDs or -l SELECTOR"},
		{[]string{"upgrade", "a1", "-l", "x=y", "--type", "exec-agent", "--version", "2"}, ExitUsage, "give agent IDs or -l/--os, not both"},
		{[]string{"upgrade", "-l", "x=y", "--type", "exec-agent", "--version", "2", "--max-errors", "some"}, ExitUsage, "--max-errors \"some\": want N or N%"},
		{[]string{"upgrade", "a1", "--type", "exec-agent", "--version", "2", "--canary", "-1"}, ExitUsage, "negative --canary"},
		{[]string{"upgrade", "a1", "--type", "exec-agent", "--version", "2", "--deadline", "1500ms"}, ExitUsage, "--deadline and --stay: whole seconds"},
		{[]string{"upgrade", "a1", "--type", "exec-agent", "--version", "2", "--deadline", "soon"}, ExitUsage, "invalid argument \"soon\" for \"--deadline\""},
		{[]string{"upgrade", "a1", "--type", "exec-agent", "--version", "2", "--signature", "/nonexistent/x.sig"}, ExitUsage, "/nonexistent/x.sig: "}, // then the OS's own words (stat …: no such file or directory; Windows: GetFileAttributesEx …: Path not found.)
		{[]string{"upgrade", "a1", "--type", "exec-agent", "--version", "2", "--detach", "-o", "json"}, ExitUsage, "--detach prints the task id only"},
		{[]string{"upgrade", "a1", "--type", "exec-agent", "--version", "2"}, ExitAuth, "no server: run agentctl login SERVER"},
		{[]string{"cp", "a", "b"}, ExitUsage, "neither side is on an agent"},
		{[]string{"cp", "a1:/x", "a2:/y"}, ExitUsage, "both sides are on agents"},
		{[]string{"cp", "-r", "-", "a1:/x"}, ExitUsage, "-r does not go with -"},
		{[]string{"cp", "a1:", "x"}, ExitUsage, "give a path after a1:"},
		{[]string{"cp", "--mode", "999", "x", "a1:/y"}, ExitUsage, "--mode \"999\""},
		{[]string{"tasks", "ls", "--state", "odd"}, ExitUsage, "--state \"odd\""},
		{[]string{"audit", "--since", "yesterday"}, ExitUsage, "--since"},
		{[]string{"layout", "run", "x", "--mode", "random", "a1"}, ExitUsage, "--mode \"random\""},
		{[]string{"metrics", "m1", "--interval", "1ms"}, ExitUsage, "--interval must be at least 500ms"},
		{[]string{"context", "use", "nosuch"}, ExitUsage, "no context \"nosuch\""},
		{[]string{"agents", "ls"}, ExitAuth, "no server: run agentctl login SERVER"},
		{[]string{"login", "ftp://x"}, ExitUsage, "scheme must be http or https"},
	} {
		_, errOut, code := run(t, env, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d with %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		err  error
		msg  string
		code int
	}{
		{&client.Error{Status: 401, Msg: "unauthorized: invalid token"}, "401: invalid token: token rejected — run agentctl login", ExitAuth},
		{&client.Error{Status: 403, Msg: "forbidden: read-only token allows GET requests only"}, "403: forbidden: read-only token allows GET requests only — this token may not do that", ExitAuth},
		{&client.Error{Status: 404, Msg: "not found: agent"}, "404: not found: agent — agentctl agents ls", ExitRemote},
		{&client.Error{Status: 404, Msg: "not found: route"}, "older than this agentctl", ExitRemote},
		{&client.Error{Status: 429, Msg: "rate limited", Retries: 4}, "retried 4 times", ExitRemote},
		{&client.Error{Status: 504, Msg: "timeout: agent did not answer"}, "raise --timeout", ExitRemote},
		{&client.Error{Status: 500, Msg: "internal error", ReqID: "r-1"}, "request id r-1", ExitRemote},
		{&client.ConnError{Server: "http://h:1", Err: fmt.Errorf("dial tcp: %w", os.ErrDeadlineExceeded)}, "cannot reach http://h:1", ExitAuth},
		{fmt.Errorf("wrapped: %w", &client.Error{Status: 401}), "token rejected", ExitAuth},
		{&ExitError{Code: 7}, "", 7},
		{context.Canceled, "interrupted", ExitInterrupted},
		{errors.New("plain"), "plain", ExitRemote},
	} {
		msg, code := describe(tc.err)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%v: %q %d, want %q %d", tc.err, msg, code, tc.msg, tc.code)
		}
	}
}

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in      string
		windows bool
		want    Location
		err     string
	}{
		{in: "web-01:/etc/hosts", want: Location{Agent: "web-01", Path: "/etc/hosts"}},
		{in: "web-01:rel/x", want: Location{Agent: "web-01", Path: "rel/x"}},
		{in: "web-01:C:\\x", want: Location{Agent: "web-01", Path: "C:\\x"}},
		{in: "./a:b", want: Location{Path: "./a:b"}},
		{in: "dir/a:b", want: Location{Path: "dir/a:b"}},
		{in: "/abs/file", want: Location{Path: "/abs/file"}},
		{in: "-", want: Location{Path: "-"}},
		{in: "plain", want: Location{Path: "plain"}},
		{in: ":x", want: Location{Path: ":x"}},
		{in: "C:\\Users\\x", windows: true, want: Location{Path: "C:\\Users\\x"}},
		{in: "c:/x", windows: true, want: Location{Path: "c:/x"}},
		{in: "c:/x", want: Location{Agent: "c", Path: "/x"}},
		{in: "web-01:", err: "give a path after web-01:"},
		{in: "a:x\x00y", err: "NUL"},
		{in: "", err: "empty path"},
	} {
		got, err := ParseLocation(tc.in, tc.windows)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"web-01:/etc/hosts", "./a:b", "C:\\x", "-", "a:", ""} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, windows bool) {
		l, err := ParseLocation(in, windows)
		if err != nil {
			return
		}
		if l.remote() && (l.Path == "" || strings.ContainsAny(l.Agent, `/\:`)) {
			t.Fatalf("%q: %+v", in, l)
		}
		if l.String() != in {
			t.Fatalf("%q: round trip %q", in, l.String())
		}
	})
}

func TestParseLabelOps(t *testing.T) {
	for _, tc := range []struct {
		in  []string
		set string
		del string
		err string
	}{
		{in: []string{"env=prod", "role=web"}, set: "map[env:prod role:web]", del: "[]"},
		{in: []string{"env=", "old-"}, set: "map[env:]", del: "[old]"},
		{in: []string{"k8s.io/zone=a=b"}, set: "map[k8s.io/zone:a=b]", del: "[]"},
		{in: []string{"role-", "role=x"}, err: "both set and removed"},
		{in: []string{"=v"}, err: "not a valid label key"},
		{in: []string{"-x=v"}, err: "not a valid label key"},
		{in: []string{"novalue"}, err: "want key=value"},
		{in: []string{"-"}, err: "want key=value"},
		{in: []string{"a b-"}, err: "want key=value"},
	} {
		set, del, err := ParseLabelOps(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(set) != tc.set || fmt.Sprint(append([]string{}, del...)) != tc.del {
			t.Errorf("%q: %v %v %v", tc.in, set, del, err)
		}
	}
}

func FuzzParseLabelOps(f *testing.F) {
	f.Add("env=prod", "role-")
	f.Add("=", "-")
	f.Fuzz(func(t *testing.T, a, b string) {
		set, del, err := ParseLabelOps([]string{a, b})
		if err != nil {
			return
		}
		for k := range set {
			if !labelKey.MatchString(k) {
				t.Fatalf("key %q accepted", k)
			}
		}
		for _, k := range del {
			if !labelKey.MatchString(k) {
				t.Fatalf("key %q accepted", k)
			}
		}
	})
}

func TestInterpreter(t *testing.T) {
	for _, tc := range []struct{ name, script, want string }{
		{"x.sh", "#!/bin/bash\necho", "bash"},
		{"x", "#!/usr/bin/env python3\nprint()", "python3"},
		{"x", "#!/usr/bin/env -S python3.12 -u\n", "python3"},
		{"x", "#! /bin/sh -e\n", "sh"},
		{"x", "#!/usr/bin/pwsh\n", "powershell"},
		{"x", "#!/usr/bin/perl\n", "sh"},
		{"x.py", "print()", "python3"},
		{"X.PS1", "Get-Date", "powershell"},
		{"x.bat", "@echo off", "bat"},
		{"x.lua", "", "lua"},
		{"x.php", "<?php", "php"},
		{"x.bash", "", "bash"},
		{"x", "", "sh"},
	} {
		if got := Interpreter(tc.name, []byte(tc.script)); got != tc.want {
			t.Errorf("%s %q: %s, want %s", tc.name, tc.script, got, tc.want)
		}
	}
}

func FuzzInterpreter(f *testing.F) {
	f.Add("x.sh", "#!/usr/bin/env python3\n")
	f.Add("x", "#!")
	f.Fuzz(func(t *testing.T, name, script string) {
		got := Interpreter(name, []byte(script))
		ok := false
		for _, s := range scriptTypes {
			ok = ok || s == got
		}
		if !ok {
			t.Fatalf("%q %q: %q", name, script, got)
		}
	})
}

func TestPackLayout(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := PackLayout(dir); err == nil || !strings.Contains(err.Error(), "no main.yaml") {
		t.Errorf("no main: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "main.yaml"), []byte("name: x\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	os.WriteFile(filepath.Join(dir, "files", "a.conf"), []byte("a"), 0o600)
	os.Symlink("/etc/hosts", filepath.Join(dir, "files", "link"))
	b, skipped, err := PackLayout(dir)
	if err != nil || len(b) == 0 {
		t.Fatalf("%v", err)
	}
	if len(skipped) != 1 || !strings.HasSuffix(skipped[0], "link") {
		t.Errorf("skipped %q", skipped)
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine("t1", client.Summary{Total: 4, OK: 1, Failed: 1, Running: 2}, "")
	if want := "t1 running [============            ] 2/4  ok 1  failed 1  running 2"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestColours: colours on a terminal only, never with NO_COLOR or
// TERM=dumb.
func TestColours(t *testing.T) {
	for _, tc := range []struct {
		tty  bool
		env  map[string]string
		want bool
	}{
		{tty: true, want: true},
		{tty: false, want: false},
		{tty: true, env: map[string]string{"NO_COLOR": "1"}, want: false},
		{tty: true, env: map[string]string{"NO_COLOR": ""}, want: true},
		{tty: true, env: map[string]string{"TERM": "dumb"}, want: false},
	} {
		a := &App{Getenv: func(k string) string { return tc.env[k] }, IsTerminal: func(any) bool { return tc.tty }}
		got := a.palette(&bytes.Buffer{}).red("x")
		if (got != "x") != tc.want {
			t.Errorf("tty %v env %v: %q", tc.tty, tc.env, got)
		}
	}
}

func TestRelTime(t *testing.T) {
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct{ in, want, err string }{
		{"", "", ""},
		{"1h", "2026-01-05T09:00:00Z", ""},
		{"90s", "2026-01-05T09:58:30Z", ""},
		{"2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", ""},
		{"1767225600", "1767225600", ""},
		{"-1h", "", "must not be negative"},
		{"yesterday", "", "want RFC 3339, unix seconds or a duration"},
		{"2026-13-01", "", "want RFC 3339"},
	} {
		got, err := relTime(c.in, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %q %v, want an error naming %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.in, got, err, c.want)
		}
	}
}

// TestAgentStatus: the STATUS column names the cluster member holding an
// online agent's session, and stays as it was outside a cluster.
func TestAgentStatus(t *testing.T) {
	for _, c := range []struct {
		a    client.Agent
		want string
	}{
		{client.Agent{}, "offline"},
		{client.Agent{IsOnline: true}, "online"},
		{client.Agent{IsOnline: true, Member: "as2"}, "online@as2"},
	} {
		if got := agentStatus(c.a); got != c.want {
			t.Errorf("%+v: %q, want %q", c.a, got, c.want)
		}
	}
}
