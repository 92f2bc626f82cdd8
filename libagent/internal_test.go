package libagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/libagent/protocol"
)

func TestServerURL(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"127.0.0.1:13081", "ws://127.0.0.1:13081/ws/agent", ""},
		{"[::1]:13081", "ws://[::1]:13081/ws/agent", ""},
		{"ws://srv:80", "ws://srv:80/ws/agent", ""},
		{"wss://srv.example/", "wss://srv.example/ws/agent", ""},
		{"wss://srv.example/custom/path", "wss://srv.example/custom/path", ""},
		{"", "", "basic.server: empty"},
		{"srv", "", `basic.server "srv": want host:port`},
		{":13081", "", `want host:port`},
		{"http://srv:80", "", `scheme "http", want ws or wss`},
		{"ws://", "", "no host"},
		{"ws://a b", "", "invalid character"},
	} {
		u, err := ServerURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ServerURL(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || u.String() != tc.want {
			t.Errorf("ServerURL(%q) = %v, %v, want %s", tc.in, u, err, tc.want)
		}
	}
	u, _ := ServerURL("wss://srv:443")
	if b := httpBase(u).String(); b != "https://srv:443" {
		t.Errorf("httpBase = %s", b)
	}
}

func TestWithSeq(t *testing.T) {
	for _, tc := range []struct {
		in   string
		seq  uint64
		want string
	}{
		{`{"type":12,"tid":"t"}`, 7, `{"seq":7,"type":12,"tid":"t"}`},
		{`{}`, 1, `{"seq":1}`},
		{`{ }`, 1, `{"seq":1 }`},
	} {
		if got := string(withSeq([]byte(tc.in), tc.seq)); got != tc.want {
			t.Errorf("withSeq(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	// The result decodes with the seq.
	b, _ := protocol.Encode(&protocol.Msg{Type: protocol.TypeExecDone, TID: "t", Payload: &protocol.ExecDone{Code: 3}})
	m, err := protocol.Decode(withSeq(b, 42))
	if err != nil || m.Seq != 42 || m.ExecDone().Code != 3 {
		t.Fatalf("decode: %+v, %v", m, err)
	}
}

var testLogs = []logFile{
	{LogFile: protocol.LogFile{Name: "a.log"}, path: "/var/log/a/a.log"},
	{LogFile: protocol.LogFile{Name: "a.1.log"}, path: "/var/log/a/a.1.log"},
}

func TestPickLogFiles(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  []string
		err   string
	}{
		{[]string{"a.log"}, []string{"a.log"}, ""},
		{[]string{"a.1.log", "a.log", "a.log"}, []string{"a.1.log", "a.log"}, ""},
		{nil, nil, "no file requested"},
		{[]string{"../a.log"}, nil, `"../a.log": not a log file of this agent`},
		{[]string{"/var/log/a/a.log"}, nil, "not a log file"},
		{[]string{"a.log", "b.log"}, nil, `"b.log": not a log file`},
		{[]string{".."}, nil, "not a log file"},
		{[]string{""}, nil, "not a log file"},
	} {
		got, err := pickLogFiles(testLogs, tc.names)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("pick %q: error %v, want %q", tc.names, err, tc.err)
			}
			continue
		}
		var names []string
		for _, f := range got {
			names = append(names, f.Name)
		}
		if err != nil || strings.Join(names, ",") != strings.Join(tc.want, ",") {
			t.Errorf("pick %q = %v, %v, want %v", tc.names, names, err, tc.want)
		}
	}
}

// FuzzPickLogFiles: whatever the server asks for, only listed files come
// out, and no path ever escapes the log directory.
func FuzzPickLogFiles(f *testing.F) {
	for _, s := range []string{"a.log", "../a.log", "/etc/passwd", "..", "", "a.log/../../x", `a.log\..\x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := pickLogFiles(testLogs, []string{name})
		if err != nil {
			if !errors.Is(err, ErrNotLogFile) {
				t.Fatalf("error %v does not wrap ErrNotLogFile", err)
			}
			return
		}
		if len(got) != 1 || got[0].Name != name || filepath.Dir(got[0].path) != "/var/log/a" {
			t.Fatalf("pick %q gave %+v", name, got)
		}
	})
}

func TestMergeExtra(t *testing.T) {
	b, _ := protocol.Encode(&protocol.Msg{Type: protocol.TypeAgentInfo, Payload: &protocol.AgentInfo{Version: "1.0"}})
	out, err := mergeExtra(b, map[string]any{"served": 3, "v": "override attempt"})
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Type int
		AI   map[string]any `json:"ai"`
	}
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatal(err)
	}
	if env.Type != 7 || env.AI["served"] != 3.0 || env.AI["v"] != "1.0" {
		t.Errorf("merged %s", out)
	}
	if _, err := mergeExtra(b, map[string]any{"bad": func() {}}); err == nil || !strings.Contains(err.Error(), `self-report field "bad"`) {
		t.Errorf("unencodable field: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Basic)
		err  string
		warn string
	}{
		{"defaults", func(*Basic) {}, "", ""},
		{"interval floor", func(b *Basic) { b.Monitor.Interval = utils.Duration(time.Second) }, "", "basic.monitor.interval 1s raised to the minimum 5s"},
		{"rotate floor", func(b *Basic) { b.Log.Rotate = 0 }, "", "basic.log.rotate 0 raised to 1"},
		{"bad server", func(b *Basic) { b.Server = "nope" }, `basic.server "nope"`, ""},
		{"bad target", func(b *Basic) { b.Log.Target = []string{"syslog"} }, `basic.log.target "syslog": want stdout or file`, ""},
		{"bad level", func(b *Basic) { b.Log.Level = "loud" }, `basic.log.level "loud"`, ""},
		{"bad label", func(b *Basic) { b.Labels = []string{"novalue"} }, `basic.labels item "novalue": want k=v`, ""},
	} {
		b := DefaultBasic()
		tc.mod(&b)
		warns, err := b.validate()
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got := strings.Join(warns, ";"); got != tc.warn {
			t.Errorf("%s: warnings %q, want %q", tc.name, got, tc.warn)
		}
	}
	if b := DefaultBasic(); time.Duration(b.Monitor.Interval) != 30*time.Second || b.Server != "127.0.0.1:13081" || b.Log.Size != 10<<20 {
		t.Errorf("defaults %+v", b)
	}
}

func TestFindBasic(t *testing.T) {
	type named struct {
		Basic Basic `kv:"basic"`
		X     int
	}
	type embedded struct {
		X int
		Basic
	}
	n, e, b := &named{}, &embedded{}, &Basic{}
	for _, tc := range []struct {
		cfg  any
		want *Basic
	}{{n, &n.Basic}, {e, &e.Basic}, {b, b}} {
		got, err := findBasic(tc.cfg)
		if err != nil || got != tc.want {
			t.Errorf("findBasic(%T) = %p, %v", tc.cfg, got, err)
		}
	}
	for _, bad := range []any{nil, named{}, &struct{ X int }{}, new(int)} {
		if _, err := findBasic(bad); !errors.Is(err, ErrNoBasic) {
			t.Errorf("findBasic(%T) = %v, want ErrNoBasic", bad, err)
		}
	}
}

func TestMainArgs(t *testing.T) {
	a := &Agent{Name: "t-agent", Config: &Basic{}}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "t-agent 0.0.0-dev (commit", ""},
		{[]string{"--conf", "x.conf", "version"}, 0, "t-agent", ""},
		{nil, 2, "", "usage: t-agent [--conf <path>] <command>"},
		{[]string{"--help"}, 0, "", "usage: t-agent [--conf <path>] <command>"},
		{[]string{"-h"}, 0, "", "usage: t-agent"},
		{[]string{"help"}, 0, "", "usage: t-agent"},
		{[]string{"run", "--help"}, 0, "", "usage: t-agent"},
		{[]string{"fly"}, 2, "", `unknown command "fly"`},
		{[]string{"version", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"--nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"install", "--conf", "/nonexistent/agent.conf"}, 1, "", "install: config stat /nonexistent/agent.conf"},
		{[]string{"run", "--conf", "/nonexistent/agent.conf"}, 1, "", "no such file"},
	} {
		var out, errb bytes.Buffer
		code := mainArgs(a, tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%q: code %d stdout %q stderr %q; want %d, %q, %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestTelemetryDropsOldest(t *testing.T) {
	var st stats
	s := newSession(nil, nil, "", 4, time.Second, time.Second, &st)
	s.sendTelemetry([]byte("r1"))
	s.sendTelemetry([]byte("r2"))
	s.sendTelemetry([]byte("r3"))
	if got := string(<-s.tele); got != "r3" {
		t.Errorf("queued report %q, want the newest r3", got)
	}
	if n := st.droppedTelemetry.Load(); n != 2 {
		t.Errorf("dropped %d, want 2", n)
	}
	// Task data blocks the producer when full, until its ctx is done.
	for i := range 4 {
		if err := s.send(t.Context(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.send(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("send on a full queue: %v, want deadline exceeded", err)
	}
}

func TestLoadConfig(t *testing.T) {
	host, _ := os.Hostname()
	type agentConf struct {
		Basic Basic  `kv:"basic"`
		Extra string `kv:"extra"`
	}
	for _, tc := range []struct {
		name, text string
		check      func(*agentConf) string
		err        string
	}{
		{"defaults", "", func(c *agentConf) string {
			if c.Basic.Server != "127.0.0.1:13081" || !c.Basic.Monitor.Enabled || c.Extra != "kept" {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		}, ""},
		{"values", "basic.id = $HOSTNAME\nbasic.log.size = 20M\nbasic.limit.cpu_quota = 50\nbasic.labels = a=1,b=2\nextra = x # comment\n", func(c *agentConf) string {
			if c.Basic.ID != host || c.Basic.Log.Size != 20<<20 || c.Basic.Limit.CPUQuota != 50 || len(c.Basic.Labels) != 2 || c.Extra != "x" {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		}, ""},
		{"unknown key", "basic.server = 1.2.3.4:5\nbasic.bogus = 1\n", nil, "agent.conf:2"},
		{"bad bytes", "basic.log.size = ten\n", nil, "agent.conf:1"},
	} {
		path := filepath.Join(t.TempDir(), "agent.conf")
		if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		c := &agentConf{Extra: "kept"}
		err := loadConfig(path, c, &c.Basic)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if msg := tc.check(c); msg != "" {
			t.Errorf("%s: got %s", tc.name, msg)
		}
	}
}
