package client

import (
	"reflect"
	"strings"
	"testing"
)

var logConfigCases = []struct {
	name, in string
	want     LogConfig
	err      string
}{
	{"yaml", "pid: web\ntype: logtail\nids: [a, b]\ndir: /var/log/*.log\nbatch: 10\n",
		LogConfig{PID: "web", Type: "logtail", IDs: List{"a", "b"}, Dir: "/var/log/*.log", Batch: 10}, ""},
	{"json, csv lists", `{"pid":"shop","type":"k8s","ns":"shop","name":"web, api","api":"https://k:6443","token":"t"}`,
		LogConfig{PID: "shop", Type: "k8s", NS: "shop", Name: List{"web", "api"}, API: "https://k:6443", Token: "t"}, ""},
	{"docker", "pid: n\ntype: docker\nids: h1\nct_name: nginx-*\nct_tag: '1.25'\nread_from: beginning\n",
		LogConfig{PID: "n", Type: "docker", IDs: List{"h1"}, CtName: "nginx-*", CtTag: "1.25", ReadFrom: "beginning"}, ""},
	{"unknown key", "pid: x\npaths: [/a]\n", LogConfig{}, "line 2: field paths not found"},
	{"no pid", "type: logtail\n", LogConfig{}, "no pid"},
	{"empty", "", LogConfig{}, "EOF"},
	{"two documents", "pid: a\n---\npid: b\n", LogConfig{}, "more than one document"},
	{"list of maps", "pid: a\nids: [{x: 1}]\n", LogConfig{}, "cannot unmarshal"},
	{"map for a list", "pid: a\nids: {x: 1}\n", LogConfig{}, "line 2: want a list of strings"},
	{"text for a number", "pid: a\nbatch: many\n", LogConfig{}, "cannot unmarshal"},
	{"not yaml", "pid: [\n", LogConfig{}, "did not find expected"},
}

func TestParseLogConfig(t *testing.T) {
	for _, c := range logConfigCases {
		got, err := ParseLogConfig([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one naming %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
}

func FuzzParseLogConfig(f *testing.F) {
	for _, c := range logConfigCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseLogConfig(b)
		if err == nil && c.PID == "" {
			t.Fatalf("accepted without a pid: %q", b)
		}
	})
}
