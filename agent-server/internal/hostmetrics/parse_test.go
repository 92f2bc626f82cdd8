package hostmetrics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentfleet/agent-server/internal/casetest"
)

var kindCases = []casetest.Case[[]string, []string]{
	{In: nil, Want: nil},
	{In: []string{"all"}, Want: nil},
	{In: []string{"tcp,udp6"}, Want: []string{"tcp", "udp6"}},
	{In: []string{" TCP , ,tcp", "unix"}, Want: []string{"tcp", "unix"}},
	{In: []string{"tcp,all"}, Want: nil},
	{In: []string{"sctp"}, Err: `bad value: unknown connection kind "sctp" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix or all)`},
	{In: []string{strings.Repeat("x", 40)}, Err: `bad value: unknown connection kind "` + strings.Repeat("x", 32) + `…" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix or all)`},
	{In: []string{manyItems(65)}, Err: "bad value: more than 64 items"},
}

func manyItems(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("k%d", i)
	}
	return strings.Join(items, ",")
}

func TestParseKinds(t *testing.T) {
	casetest.Run(t, "ParseKinds", ParseKinds, kindCases)
}

func TestParseJobs(t *testing.T) {
	// An empty list is an empty job list (stop all), not nil.
	casetest.Run(t, "ParseJobs", ParseJobs, []casetest.Case[[]string, []string]{
		{In: []string{}, Want: []string{}},
		{In: []string{"usage", "static", "usage"}, Want: []string{"usage", "static"}},
		{In: []string{"Temps,conns", "process"}, Want: []string{"temps", "conns", "process"}},
		{In: []string{"disk"}, Err: `bad value: unknown job "disk" (want static, usage, process, conns, temps)`},
		{In: []string{manyItems(70)}, Err: "bad value: more than 64 items"},
	})
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
		f.Add(strings.Join(tc.In, ";"))
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
