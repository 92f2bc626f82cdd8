package store

import (
	"errors"
	"regexp"
	"testing"
)

var sortTests = []struct {
	in, order, err string
}{
	{"", "id", ""},
	{"id", "id", ""},
	{"-id", "id DESC", ""},
	{"host_name", "host_name, id", ""},
	{"-last_seen", "last_seen DESC, id DESC", ""},
	{"labels", "", `invalid: sort key "labels" (one of id, type, version, ip, host_name, os, platform, arch, first_seen, last_seen, - in front for descending)`},
	{"--id", "", `invalid: sort key "-id"`},
	{"id DESC", "", `invalid: sort key "id DESC"`},
	{"id;DROP TABLE agents", "", `invalid: sort key "id;DROP TABLE agents"`},
	{"-", "", `invalid: sort key ""`},
	{"ID", "", `invalid: sort key "ID"`},
}

func TestAgentOrder(t *testing.T) {
	for _, tt := range sortTests {
		got, err := AgentOrder(tt.in)
		switch {
		case tt.err != "" && (err == nil || !errors.Is(err, ErrInvalid) || len(err.Error()) < len(tt.err) || err.Error()[:len(tt.err)] != tt.err):
			t.Errorf("AgentOrder(%q) error %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.order):
			t.Errorf("AgentOrder(%q) = %q, %v; want %q", tt.in, got, err, tt.order)
		}
	}
}

// orderClause is every clause AgentOrder may return: allowed columns only,
// so nothing of the input reaches the SQL text.
var orderClause = regexp.MustCompile(`^(id|id DESC|(type|version|ip|host_name|os|platform|arch|first_seen|last_seen)( DESC)?, id( DESC)?)$`)

func FuzzAgentOrder(f *testing.F) {
	for _, tt := range sortTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := AgentOrder(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("AgentOrder(%q): error %v is not ErrInvalid", s, err)
			}
			return
		}
		if !orderClause.MatchString(got) {
			t.Fatalf("AgentOrder(%q) = %q: not an allowed clause", s, got)
		}
	})
}
