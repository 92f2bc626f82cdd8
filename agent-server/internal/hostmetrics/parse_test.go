package hostmetrics

import (
	"fmt"
	"strings"
	"testing"
)

var kindCases = []struct {
	in   []string
	want []string
	err  string
}{
	{nil, nil, ""},
	{[]string{"all"}, nil, ""},
	{[]string{"tcp,udp6"}, []string{"tcp", "udp6"}, ""},
	{[]string{" TCP , ,tcp", "unix"}, []string{"tcp", "unix"}, ""},
	{[]string{"tcp,all"}, nil, ""},
	{[]string{"sctp"}, nil, `bad value: unknown connection kind "sctp" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix or all)`},
	{[]string{strings.Repeat("x", 40)}, nil, `bad value: unknown connection kind "` + strings.Repeat("x", 32) + `…" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix or all)`},
	{[]string{manyItems(65)}, nil, "bad value: more than 64 items"},
}

func manyItems(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("k%d", i)
	}
	return strings.Join(items, ",")
}

func TestParseKinds(t *testing.T) {
	for _, tc := range kindCases {
		got, err := ParseKinds(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseKinds(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseKinds(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseJobs(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
		err  string
	}{
		{[]string{}, "[]", ""},
		{[]string{"usage", "static", "usage"}, "[usage static]", ""},
		{[]string{"Temps,conns", "process"}, "[temps conns process]", ""},
		{[]string{"disk"}, "", `bad value: unknown job "disk" (want static, usage, process, conns, temps)`},
		{[]string{manyItems(70)}, "", "bad value: more than 64 items"},
	} {
		got, err := ParseJobs(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseJobs(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tc.want || got == nil {
			t.Errorf("ParseJobs(%q) = %#v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestFilterConnections(t *testing.T) {
	cs := []Connection{{Type: "tcp4"}, {Type: "tcp6"}, {Type: "udp4"}, {Type: "udp6"}, {Type: "unix"}, {Type: "tcp"}}
	for _, tc := range []struct {
		kinds []string
		want  string
	}{
		{nil, "tcp4 tcp6 udp4 udp6 unix tcp"},
		{[]string{"tcp"}, "tcp4 tcp6 tcp"},
		{[]string{"tcp6", "udp4"}, "tcp6 udp4"},
		{[]string{"unix"}, "unix"},
	} {
		var got []string
		for _, c := range FilterConnections(cs, tc.kinds) {
			got = append(got, c.Type)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("kinds %v: %v, want %s", tc.kinds, got, tc.want)
		}
	}
}

func TestTopProcesses(t *testing.T) {
	ps := []Process{{ID: 1, CPUUsage: 1, RSS: 5}, {ID: 2, CPUUsage: 9}, {ID: 3, CPUUsage: 1, RSS: 50}}
	if got := TopProcesses(ps, 2); len(got) != 2 || got[0].ID != 2 || got[1].ID != 3 {
		t.Errorf("top 2 = %+v", got)
	}
	if got := TopProcesses(ps, 0); len(got) != 3 || got[0].ID != 1 {
		t.Errorf("top 0 = %+v", got)
	}
	if ps[0].ID != 1 {
		t.Error("TopProcesses sorted its input")
	}
}

// FuzzParseKinds: any query value is either accepted (known kinds only,
// no duplicates) or refused with ErrBadValue; never a panic.
func FuzzParseKinds(f *testing.F) {
	for _, tc := range kindCases {
		f.Add(strings.Join(tc.in, ";"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		vals := strings.Split(s, ";")
		kinds, err := ParseKinds(vals)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "bad value: ") {
				t.Fatalf("error %q", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, k := range kinds {
			if seen[k] || !strings.Contains(" tcp tcp4 tcp6 udp udp4 udp6 unix ", " "+k+" ") {
				t.Fatalf("accepted %q from %q", k, s)
			}
			seen[k] = true
		}
		if _, err := ParseJobs(vals); err != nil && !strings.HasPrefix(err.Error(), "bad value: ") {
			t.Fatalf("ParseJobs error %q", err)
		}
	})
}
