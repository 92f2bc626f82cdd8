package manifest

import (
	"strings"
	"testing"
)

// agent is a manifest with the basic keys plus a few of an agent's own.
func agent(t *testing.T) *Manifest {
	t.Helper()
	own := parse(t, `
- key: task.jobs
  type: csv
  name: {zh: 任务}
  desc: {zh: 启用的任务}
  csv_valid: [static, usage]
  default: static,usage
- key: task.listen
  type: naddr
  name: {zh: 监听}
  desc: {zh: 监听地址}
  required: true
- key: task.usage.token
  type: string
  name: {zh: 令牌}
  desc: {zh: 令牌}
  required: true
  enabled: {when: {target: task.jobs, contain: usage}}
`)
	m := Merge(Basic(), own)
	if ps := m.Validate(); len(ps) > 0 {
		t.Fatal(lines(ps))
	}
	return m
}

var configCases = []struct {
	name, conf, want string
}{
	{"ok", "basic.server = wss://fleet.example.com:443\ntask.listen = 127.0.0.1:9000\ntask.usage.token = t\n", ""},
	{"env server and id", "basic.id = $HOSTNAME\nbasic.server = $SERVER\ntask.listen = :9000\ntask.usage.token = t\n", ""},
	{"unknown key", "task.listen = :1\ntask.usage.token = t\nbasic.log.sise = 10M\n", "a.conf:3: basic.log.sise: unknown key"},
	{"missing required", "basic.log.level = info\n", "a.conf: task.listen: required key is missing\na.conf: task.usage.token: required key is missing"},
	{"required when disabled", "task.jobs = static\ntask.listen = :1\n", ""},
	{"required empty", "task.listen =\ntask.usage.token = t\n", "a.conf:1: task.listen: required key is empty"},
	{"below min", "task.listen = :1\ntask.usage.token = t\nbasic.monitor.interval = 1s\n", "a.conf:3: basic.monitor.interval: 1s is below the minimum 5s"},
	{"above max", "task.listen = :1\ntask.usage.token = t\nbasic.log.rotate = 1000\nbasic.log.size = 2G\n", "a.conf:3: basic.log.rotate: 1000 is above the maximum 100\na.conf:4: basic.log.size: 2G is above the maximum 1G"},
	{"bad values", "task.listen = nowhere\ntask.usage.token = t\nbasic.log.level = verbose\nbasic.log.target = stdout, syslog\nbasic.monitor.enabled = yes\nbasic.limit.memory_limit = 1X\n",
		"a.conf:1: task.listen: not host:port: \"nowhere\"\n" +
			"a.conf:3: basic.log.level: \"verbose\" is not one of debug, info, warn, error\n" +
			"a.conf:4: basic.log.target: item \"syslog\" is not one of stdout, file\n" +
			"a.conf:5: basic.monitor.enabled: not a bool: \"yes\"\n" +
			"a.conf:6: basic.limit.memory_limit: not a byte size: \"1X\""},
	{"bad server", "task.listen = :1\ntask.usage.token = t\nbasic.server = http://x\n", "a.conf:3: basic.server: \"http://x\" does not match str_valid \"(wss?://)?[^\\\\s/]+:[0-9]{1,5}(/\\\\S*)?|\\\\$\\\\w+\""},
	{"syntax", "task.listen = :1\njust words\n", "a.conf:2: missing \"=\" in \"just words\""},
	{"duplicate", "task.listen = :1\ntask.listen = :2\n", "a.conf:2: task.listen: duplicate key (first set on line 1)"},
}

func TestCheckConfig(t *testing.T) {
	m := agent(t)
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := m.CheckConfig(strings.NewReader(tc.conf), "a.conf")
			if err != nil {
				t.Fatal(err)
			}
			if got := lines(ps); got != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func FuzzCheckConfig(f *testing.F) {
	for _, tc := range configCases {
		f.Add(tc.conf)
	}
	f.Fuzz(func(t *testing.T, conf string) {
		m := Basic()
		ps, err := m.CheckConfig(strings.NewReader(conf), "f.conf")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.File != "f.conf" || p.Msg == "" {
				t.Fatalf("malformed problem %+v", p)
			}
		}
	})
}
