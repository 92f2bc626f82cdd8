package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestLoggingSQLite(t *testing.T) { runLoggingSuite(t, sqliteTestConfig) }
func TestLoggingMySQL(t *testing.T)  { runLoggingSuite(t, mysqlTestConfig) }

func runLoggingSuite(t *testing.T, nc newConfig) {
	ctx := context.Background()
	st := openStore(t, nc(t))
	ls, ok := st.(LoggingStore)
	if !ok {
		t.Fatalf("%T does not implement LoggingStore", st)
	}
	if _, err := ls.GetLogProject(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get absent: %v, want ErrNotFound", err)
	}
	p, err := ls.PutLogProject(ctx, LogProject{Name: "web", Type: "logtail", Spec: json.RawMessage(`{"pid":"web"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running || p.Version != 1 || !p.CreatedAt.Equal(t0.Truncate(1000)) {
		t.Fatalf("created %+v", p)
	}
	if _, err := ls.SetLogProjectRunning(ctx, "web", true); !errors.Is(err, ErrConflict) {
		t.Fatalf("start a running project: %v, want ErrConflict", err)
	}
	if p, err = ls.SetLogProjectRunning(ctx, "web", false); err != nil || p.Running || p.Version != 2 {
		t.Fatalf("stop: %+v %v", p, err)
	}
	if p, err = ls.PutLogProject(ctx, LogProject{Name: "web", Type: "docker", Spec: json.RawMessage(`{"pid":"web","ct_name":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if p.Running || p.Version != 3 || p.Type != "docker" {
		t.Fatalf("replaced %+v: running and created must be kept", p)
	}
	got, err := ls.GetLogProject(ctx, "web")
	if err != nil || string(got.Spec) != `{"pid":"web","ct_name":"x"}` || got.Version != 3 {
		t.Fatalf("get %+v %v", got, err)
	}
	if _, err := ls.PutLogProject(ctx, LogProject{Name: "", Type: "logtail", Spec: json.RawMessage(`{}`)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty name: %v", err)
	}
	if _, err := ls.PutLogProject(ctx, LogProject{Name: "x", Type: "logtail", Spec: json.RawMessage(`{`)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad spec: %v", err)
	}
	if err := ls.PutLogNodes(ctx, []LogNode{
		{Project: "web", AgentID: "b", Status: json.RawMessage(`{"running":true}`)},
		{Project: "web", AgentID: "a", Status: json.RawMessage(`{"running":false}`)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := ls.PutLogNodes(ctx, []LogNode{{Project: "web", AgentID: "a", Status: json.RawMessage(`{"running":true}`)}}); err != nil {
		t.Fatal(err)
	}
	ns, err := ls.ListLogNodes(ctx, "web")
	if err != nil || len(ns) != 2 || ns[0].AgentID != "a" || string(ns[0].Status) != `{"running":true}` {
		t.Fatalf("nodes %+v %v", ns, err)
	}
	if err := ls.PutLogNodes(ctx, []LogNode{{Project: "web", AgentID: "a", Status: json.RawMessage(`nope`)}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad status: %v", err)
	}
	ps, err := ls.ListLogProjects(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatalf("list %+v %v", ps, err)
	}
	if err := ls.DeleteLogProject(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := ls.DeleteLogProject(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if ns, _ := ls.ListLogNodes(ctx, "web"); len(ns) != 0 {
		t.Fatalf("nodes left after delete: %+v", ns)
	}
}
