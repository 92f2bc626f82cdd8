package authz

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var parseCases = []struct {
	in   string
	want string
	err  string
}{
	{"", "[]", ""},
	{"admin", "[admin]", ""},
	{" exec:run , agents:read,exec:run,", "[agents:read exec:run]", ""},
	{"logs:read,audit:read,tasks:write", "[tasks:write audit:read logs:read]", ""},
	{"exec:all", "", `unknown scope "exec:all" (known: agents:read, agents:write,`},
	{"Admin", "", `unknown scope "Admin"`},
	{"exec:run exec:read", "", `unknown scope "exec:run exec:read"`},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		got, err := Parse(strings.Split(tc.in, ","))
		switch {
		case tc.err != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Parse(%q) error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || fmt.Sprint(got) != tc.want):
			t.Errorf("Parse(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.in, "env=prod")
	}
	f.Fuzz(func(t *testing.T, scopes, selector string) {
		got, err := Parse(strings.Split(scopes, ","))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, s := range got {
			if _, ok := Lookup(s); !ok {
				t.Fatalf("unknown scope %q accepted", s)
			}
		}
		id, err := NewIdentity("x", got, selector, time.Time{})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if id.Limited() && (id.Has(Admin) || id.Has(AuditRead)) {
			t.Fatalf("fleet-wide scope with a selector: %v %q", got, selector)
		}
	})
}

func TestHas(t *testing.T) {
	tests := []struct {
		scopes []Scope
		has    []Scope
		not    []Scope
	}{
		{[]Scope{Admin}, []Scope{AgentsRead, ExecRun, ExecReadAny, FilesRead, LogsRead, AuditRead, Admin}, nil},
		{ReadOnlyScopes, []Scope{AgentsRead, MetricsRead, ExecRead, TasksRead, AuditRead, PackagesRead}, []Scope{FilesRead, ExecReadAny, LogsRead, ExecRun, Admin, AgentsWrite}},
		{[]Scope{ExecReadAny}, []Scope{ExecReadAny, ExecRead}, []Scope{ExecRun}},
		{[]Scope{ExecRead}, []Scope{ExecRead}, []Scope{ExecReadAny}},
		{[]Scope{FilesWrite}, []Scope{FilesWrite}, []Scope{FilesRead}},
	}
	for _, tc := range tests {
		id, err := NewIdentity("t", tc.scopes, "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tc.has {
			if !id.Has(s) {
				t.Errorf("%v lacks %s", tc.scopes, s)
			}
		}
		for _, s := range tc.not {
			if id.Has(s) {
				t.Errorf("%v has %s", tc.scopes, s)
			}
		}
	}
}

func TestIdentity(t *testing.T) {
	ro, _ := NewIdentity("ro", ReadOnlyScopes, "", time.Time{})
	if !ro.ReadOnly() || ro.Limited() || !ro.Reaches(nil) {
		t.Errorf("read-only identity: %+v", ro)
	}
	op, _ := NewIdentity("op", []Scope{ExecRead, FilesWrite}, "", time.Time{})
	if op.ReadOnly() {
		t.Error("files:write is read-only")
	}
	lim, err := NewIdentity("web", []Scope{ExecRun}, " env=prod, team=web ", time.Time{})
	if err != nil || !lim.Limited() || lim.Selector != "env=prod, team=web" {
		t.Fatalf("limited: %+v %v", lim, err)
	}
	if !lim.Reaches(map[string]string{"env": "prod", "team": "web", "x": "y"}) || lim.Reaches(map[string]string{"env": "prod"}) || lim.Reaches(nil) {
		t.Error("selector matching")
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp, _ := NewIdentity("e", []Scope{AgentsRead}, "", now)
	if !exp.Expired(now) || exp.Expired(now.Add(-time.Nanosecond)) || ro.Expired(now) {
		t.Error("expiry")
	}
	for _, tc := range []struct {
		scopes []Scope
		sel    string
		err    string
	}{
		{nil, "", "no scopes"},
		{[]Scope{Admin}, "env=prod", "scope admin is fleet-wide and cannot be limited by a selector"},
		{[]Scope{AgentsRead, AuditRead}, "env", "scope audit:read is fleet-wide"},
		{[]Scope{AgentsRead}, "a,,b", "selector: label selector: empty term"},
	} {
		if _, err := NewIdentity("x", tc.scopes, tc.sel, time.Time{}); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("NewIdentity(%v, %q) = %v, want %q", tc.scopes, tc.sel, err, tc.err)
		}
	}
}

// TestTable: every scope is named "<area>:<right>" or admin, once, with
// help; implications point at known scopes.
func TestTable(t *testing.T) {
	seen := map[Scope]bool{}
	for _, in := range All() {
		if seen[in.Name] || in.Help == "" || (in.Name != Admin && !strings.Contains(string(in.Name), ":")) {
			t.Errorf("scope %+v", in)
		}
		seen[in.Name] = true
		for _, im := range in.Implies {
			if _, ok := Lookup(im); !ok {
				t.Errorf("%s implies unknown %s", in.Name, im)
			}
		}
	}
}
