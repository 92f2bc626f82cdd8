package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func testAudit(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	entries := []AuditEntry{
		{Time: t0, Actor: "alice", Action: "exec.run", Target: "a1", RequestID: "r1", Result: "ok", Detail: json.RawMessage(`{"cmd":"ls"}`)},
		{Time: t0.Add(time.Second), Actor: "bob", Action: "task.create", Target: "t1", RequestID: "r2", Result: "ok"},
		{Time: t0.Add(time.Second), Actor: "alice", Action: "exec.kill", Target: "a1", RequestID: "r3", Result: "agent went away"},
		{Time: t0.Add(2 * time.Second), Actor: "alice", Action: "exec.run", Target: "a2", RequestID: "r4", Result: "ok"},
		{Actor: "carol", Action: "labels.set", Target: "a2", RequestID: "r5", Result: "ok"}, // time now = t0
	}
	var ids []int64
	for _, e := range entries {
		id, err := s.AppendAudit(ctx, e)
		must(t, err)
		ids = append(ids, id)
	}
	if !slices.IsSorted(ids) || ids[0] == ids[1] {
		t.Fatalf("ids %v", ids)
	}
	_, err := s.AppendAudit(ctx, AuditEntry{Action: "x", Detail: json.RawMessage(`{]`)})
	wantErr(t, err, ErrInvalid, "audit detail is not valid JSON")
	reqs := func(es []AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.RequestID)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		f     AuditFilter
		total int
		want  []string
	}{
		{"newest first, ties by id", AuditFilter{}, 5, []string{"r4", "r3", "r2", "r5", "r1"}},
		{"page 2", AuditFilter{Paging: Paging{Page: 2, Size: 2}}, 5, []string{"r2", "r5"}},
		{"beyond", AuditFilter{Paging: Paging{Page: 9, Size: 2}}, 5, nil},
		{"actor", AuditFilter{Actor: "alice"}, 3, []string{"r4", "r3", "r1"}},
		{"action", AuditFilter{Action: "exec.run"}, 2, []string{"r4", "r1"}},
		{"target", AuditFilter{Target: "a2"}, 2, []string{"r4", "r5"}},
		{"since inclusive", AuditFilter{Since: t0.Add(time.Second)}, 3, []string{"r4", "r3", "r2"}},
		{"until exclusive", AuditFilter{Until: t0.Add(time.Second)}, 2, []string{"r5", "r1"}},
		{"window", AuditFilter{Since: t0.Add(time.Second), Until: t0.Add(2 * time.Second), Actor: "alice"}, 1, []string{"r3"}},
		{"actor injection", AuditFilter{Actor: "alice' OR '1'='1"}, 0, nil},
	} {
		got, total, err := s.ListAudit(ctx, tc.f)
		must(t, err)
		if total != tc.total || !slices.Equal(reqs(got), tc.want) {
			t.Fatalf("%s: total %d %v, want %d %v", tc.name, total, reqs(got), tc.total, tc.want)
		}
	}
	got, _, _ := s.ListAudit(ctx, AuditFilter{Action: "exec.run", Paging: Paging{Size: 1, Page: 2}})
	e := got[0]
	if e.ID != ids[0] || !e.Time.Equal(utc(t0)) || e.Actor != "alice" || e.Target != "a1" || string(e.Detail) != `{"cmd":"ls"}` || e.Result != "ok" {
		t.Fatalf("entry %+v", e)
	}
}

// testAuditScan: the agent, remote and status columns round-trip, the
// agent filter works, and ScanAudit walks the log by id, oldest first.
func testAuditScan(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	for i := range 7 {
		_, err := s.AppendAudit(ctx, AuditEntry{Time: t0.Add(time.Duration(7-i) * time.Second), Actor: "ops", Action: "GET /api/file/{id}/download",
			Target: "a1", Agent: fmt.Sprintf("a%d", i%2), Remote: "127.0.0.1:5000", Status: 200 + i, RequestID: fmt.Sprint("r", i), Result: "ok"})
		must(t, err)
	}
	_, err := s.AppendAudit(ctx, AuditEntry{Action: "x", Agent: strings.Repeat("a", 129)})
	wantErr(t, err, ErrInvalid, "agent longer than 128")
	var seen []string
	var after int64
	for {
		page, err := s.ScanAudit(ctx, AuditFilter{}, after, 3)
		must(t, err)
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.ID <= after {
				t.Fatalf("scan went back: %d after %d", e.ID, after)
			}
			after = e.ID
			seen = append(seen, e.RequestID)
		}
	}
	if fmt.Sprint(seen) != "[r0 r1 r2 r3 r4 r5 r6]" {
		t.Fatalf("scan order %v (ids, not times, order it)", seen)
	}
	page, err := s.ScanAudit(ctx, AuditFilter{Agent: "a1", Since: t0.Add(3 * time.Second)}, 0, 100)
	must(t, err)
	if len(page) != 2 || page[0].RequestID != "r1" || page[1].RequestID != "r3" {
		t.Fatalf("filtered scan %+v", page)
	}
	if e := page[0]; e.Agent != "a1" || e.Remote != "127.0.0.1:5000" || e.Status != 201 || e.Target != "a1" {
		t.Fatalf("entry %+v", e)
	}
	list, total, err := s.ListAudit(ctx, AuditFilter{Agent: "a0"})
	must(t, err)
	if total != 4 || len(list) != 4 {
		t.Fatalf("agent filter: %d %d", total, len(list))
	}
}

// TestAuditAppendOnly: the Store has no method that could change or remove
// audit entries, whatever their name.
func TestAuditAppendOnly(t *testing.T) {
	st := reflect.TypeFor[Store]()
	for i := range st.NumMethod() {
		name := st.Method(i).Name
		if strings.Contains(name, "Audit") && name != "AppendAudit" && name != "ListAudit" && name != "ScanAudit" {
			t.Errorf("Store.%s: the audit log is append-only; review this method", name)
		}
	}
}

func testAPITokens(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	hash := func(b byte) []byte { return bytes.Repeat([]byte{b}, TokenHashSize) }
	tok := APIToken{Name: "deploy", Hash: hash(1), Scopes: []string{"exec:run", "agents:read"}, Selector: "env=prod", CreatedBy: "ops", ExpiresAt: t0.Add(time.Hour)}
	got, err := s.CreateAPIToken(ctx, tok)
	must(t, err)
	if !got.CreatedAt.Equal(utc(t0)) {
		t.Fatalf("created at %v", got.CreatedAt)
	}
	_, err = s.CreateAPIToken(ctx, APIToken{Name: "deploy", Hash: hash(2), Scopes: []string{"admin"}})
	wantErr(t, err, ErrConflict, "create API token deploy")
	_, err = s.CreateAPIToken(ctx, APIToken{Name: "other", Hash: hash(1), Scopes: []string{"admin"}})
	wantErr(t, err, ErrConflict, "create API token other")
	for _, bad := range []APIToken{
		{Name: "", Hash: hash(3), Scopes: []string{"admin"}},
		{Name: strings.Repeat("n", 65), Hash: hash(3), Scopes: []string{"admin"}},
		{Name: "x", Hash: []byte("short"), Scopes: []string{"admin"}},
		{Name: "x", Hash: hash(3)},
		{Name: "x", Hash: hash(3), Scopes: []string{"a,b"}},
	} {
		_, err := s.CreateAPIToken(ctx, bad)
		wantErr(t, err, ErrInvalid, "create API token")
	}
	must2 := func(tk APIToken, err error) APIToken { t.Helper(); must(t, err); return tk }
	check := func(g APIToken) {
		t.Helper()
		if g.Name != "deploy" || !bytes.Equal(g.Hash, hash(1)) || fmt.Sprint(g.Scopes) != "[exec:run agents:read]" || g.Selector != "env=prod" ||
			g.CreatedBy != "ops" || !g.CreatedAt.Equal(utc(t0)) || !g.ExpiresAt.Equal(utc(t0.Add(time.Hour))) || !g.RevokedAt.IsZero() {
			t.Fatalf("token %+v", g)
		}
	}
	check(must2(s.GetAPIToken(ctx, "deploy")))
	check(must2(s.APITokenByHash(ctx, hash(1))))
	_, err = s.GetAPIToken(ctx, "nope")
	wantErr(t, err, ErrNotFound, "nope")
	_, err = s.APITokenByHash(ctx, hash(9))
	wantErr(t, err, ErrNotFound, "find API token")
	must2(s.CreateAPIToken(ctx, APIToken{Name: "a-first", Hash: hash(4), Scopes: []string{"admin"}}))
	list, total, err := s.ListAPITokens(ctx, Paging{})
	must(t, err)
	if total != 2 || len(list) != 2 || list[0].Name != "a-first" || list[1].Name != "deploy" || !list[0].ExpiresAt.IsZero() {
		t.Fatalf("list %d %+v", total, list)
	}
	r := must2(s.RevokeAPIToken(ctx, "deploy", t0.Add(time.Minute), "ops"))
	if !r.RevokedAt.Equal(utc(t0.Add(time.Minute))) || r.RevokedBy != "ops" {
		t.Fatalf("revoked %+v", r)
	}
	r = must2(s.RevokeAPIToken(ctx, "deploy", t0.Add(time.Hour), "other"))
	if !r.RevokedAt.Equal(utc(t0.Add(time.Minute))) || r.RevokedBy != "ops" {
		t.Fatalf("second revoke changed the first: %+v", r)
	}
	if g := must2(s.APITokenByHash(ctx, hash(1))); g.RevokedAt.IsZero() {
		t.Fatal("revocation not visible by hash")
	}
	_, err = s.RevokeAPIToken(ctx, "nope", t0, "ops")
	wantErr(t, err, ErrNotFound, "revoke API token nope")
	// A revoked token keeps its name taken.
	_, err = s.CreateAPIToken(ctx, APIToken{Name: "deploy", Hash: hash(5), Scopes: []string{"admin"}})
	wantErr(t, err, ErrConflict, "deploy")
}
