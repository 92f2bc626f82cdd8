package logging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/agentfleet/libagent/logship"
)

func openTestStore(t *testing.T, dir string, o StoreOptions) *Store {
	t.Helper()
	o.Dir = dir
	s, err := OpenStore(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func recs(src int, from, n int, t0 int64) []logship.Record {
	out := make([]logship.Record, n)
	for i := range out {
		k := from + i
		out[i] = logship.Record{Source: src, Offset: int64(k) * 10, Time: t0 + int64(k), Data: []byte(fmt.Sprintf("line %d", k))}
	}
	return out
}

func queryAll(t *testing.T, s *Store, q Query) []Line {
	t.Helper()
	var out []Line
	for {
		lines, next, err := s.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lines...)
		if next == nil {
			return out
		}
		// The cursor survives its text form.
		if q.After, err = ParseCursor(next.Encode()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAppendDedup: records at or below a source's mark are repeats, also
// after the store is reopened (the marks come from the files).
func TestAppendDedup(t *testing.T) {
	dir := t.TempDir()
	srcs := []Source{{"s1", "/var/log/a.log"}, {"s2", "/var/log/b.log"}}
	s := openTestStore(t, dir, StoreOptions{})
	r, err := s.Append("p", "h1", srcs, append(recs(0, 0, 5, 1), recs(1, 0, 3, 1)...))
	if err != nil || len(r.Stored) != 8 || r.Dup != 0 {
		t.Fatalf("first: %+v %v", r, err)
	}
	// The same batch again, then one overlapping.
	if r, _ = s.Append("p", "h1", srcs, recs(0, 0, 5, 1)); len(r.Stored) != 0 || r.Dup != 5 {
		t.Fatalf("repeat: stored %d dup %d", len(r.Stored), r.Dup)
	}
	if r, _ = s.Append("p", "h1", srcs, recs(0, 3, 5, 1)); len(r.Stored) != 3 || r.Dup != 2 {
		t.Fatalf("overlap: stored %d dup %d", len(r.Stored), r.Dup)
	}
	// Another host has marks of its own.
	if r, _ = s.Append("p", "h2", srcs, recs(0, 0, 2, 1)); len(r.Stored) != 2 {
		t.Fatalf("h2: %+v", r)
	}
	s.Close()
	s2 := openTestStore(t, dir, StoreOptions{})
	if r, _ = s2.Append("p", "h1", srcs, recs(0, 0, 10, 1)); len(r.Stored) != 2 || r.Dup != 8 {
		t.Fatalf("after reopen: stored %d dup %d, want 2 and 8", len(r.Stored), r.Dup)
	}
	if n, err := s2.Count("p"); err != nil || n != 8+3+2+2 {
		t.Fatalf("count %d %v", n, err)
	}
	lines := queryAll(t, s2, Query{Project: "p", Hosts: []string{"h1"}, Limit: 3})
	if len(lines) != 13 {
		t.Fatalf("query: %d lines", len(lines))
	}
	prev := map[string]int64{}
	for _, l := range lines {
		if p, ok := prev[l.SourceID]; ok && l.Offset <= p {
			t.Fatalf("source %s: offset %d after %d", l.SourceID, l.Offset, p)
		}
		prev[l.SourceID] = l.Offset
	}
	// Removal: the folder moves away at once, appends fail afterwards
	// only for the handles of the removed project.
	trash, err := s2.DropProject("p")
	if err != nil || trash == "" {
		t.Fatalf("drop: %q %v", trash, err)
	}
	if hosts, _ := s2.Hosts("p"); len(hosts) != 0 {
		t.Fatalf("hosts after drop: %v", hosts)
	}
	if err := os.RemoveAll(trash); err != nil {
		t.Fatal(err)
	}
	if r, err := s2.Append("p", "h1", srcs, recs(0, 0, 2, 1)); err != nil || len(r.Stored) != 2 {
		t.Fatalf("a project of the same name starts afresh: %+v %v", r, err)
	}
}

// TestTornFrameCut: a crash in the middle of a frame leaves a torn tail,
// which the next open cuts; the lines of that frame are taken again.
func TestTornFrameCut(t *testing.T) {
	dir := t.TempDir()
	srcs := []Source{{"s1", "a"}}
	s := openTestStore(t, dir, StoreOptions{})
	if _, err := s.Append("p", "h", srcs, recs(0, 0, 4, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append("p", "h", srcs, recs(0, 4, 4, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	seg := filepath.Join(dir, "p", "h", segName(1))
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	s2 := openTestStore(t, dir, StoreOptions{})
	r, err := s2.Append("p", "h", srcs, recs(0, 0, 10, 1))
	if err != nil || len(r.Stored) != 6 || r.Dup != 4 {
		t.Fatalf("after a torn frame: stored %d dup %d err %v, want 6 and 4", len(r.Stored), r.Dup, err)
	}
	lines := queryAll(t, s2, Query{Project: "p"})
	for i, l := range lines {
		if string(l.Data) != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d: %q", i, l.Data)
		}
	}
	if len(lines) != 10 {
		t.Fatalf("%d lines", len(lines))
	}
}

// TestRotationAndRetention: segments close at their size, each new one
// carries the marks, and retention deletes closed ones by size and age
// without losing the marks.
func TestRotationAndRetention(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	srcs := []Source{{"s1", "a"}}
	s := openTestStore(t, dir, StoreOptions{SegmentBytes: 300, MaxBytes: 1200, Now: clock})
	for i := range 20 {
		if _, err := s.Append("p", "h", srcs, recs(0, i*10, 10, 1)); err != nil {
			t.Fatal(err)
		}
	}
	seqs, _ := segments(filepath.Join(dir, "p", "h"))
	if len(seqs) < 5 {
		t.Fatalf("%d segments, want rotation at 300 bytes", len(seqs))
	}
	n, _, err := s.Prune()
	if err != nil || n == 0 {
		t.Fatalf("prune by size: %d %v", n, err)
	}
	after, _ := segments(filepath.Join(dir, "p", "h"))
	if after[len(after)-1] != seqs[len(seqs)-1] || len(after) >= len(seqs) {
		t.Fatalf("segments %v → %v: the oldest must go, the newest stay", seqs, after)
	}
	// The marks live on: a repeat of everything stores nothing.
	s.Close()
	s2 := openTestStore(t, dir, StoreOptions{SegmentBytes: 300, MaxAge: time.Hour, Now: clock})
	if r, _ := s2.Append("p", "h", srcs, recs(0, 0, 200, 1)); len(r.Stored) != 0 || r.Dup != 200 {
		t.Fatalf("after retention: stored %d dup %d", len(r.Stored), r.Dup)
	}
	// By age: every closed segment is old now; the open one stays.
	for _, q := range after {
		p := filepath.Join(dir, "p", "h", segName(q))
		_ = os.Chtimes(p, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	}
	if _, _, err := s2.Prune(); err != nil {
		t.Fatal(err)
	}
	if left, _ := segments(filepath.Join(dir, "p", "h")); len(left) != 1 {
		t.Fatalf("after age retention: %v, want the open segment only", left)
	}
}

// TestQueryFilters: time range, host, source pattern, grep and paging.
func TestQueryFilters(t *testing.T) {
	s := openTestStore(t, t.TempDir(), StoreOptions{})
	t0 := time.Unix(1_700_000_000, 0).UnixNano()
	srcs := []Source{{"s1", "/var/log/app.log"}, {"s2", "/var/log/db.log"}}
	for _, h := range []string{"web-1", "weird host/../x"} {
		if _, err := s.Append("p", h, srcs, append(recs(0, 0, 50, t0), recs(1, 0, 50, t0)...)); err != nil {
			t.Fatal(err)
		}
	}
	hosts, _ := s.Hosts("p")
	if len(hosts) != 2 || hosts[1] != "weird host/../x" {
		t.Fatalf("hosts %q: an odd agent id must come back unchanged", hosts)
	}
	cases := []struct {
		name string
		q    Query
		want int
	}{
		{"all", Query{}, 200},
		{"host", Query{Hosts: []string{"web-1"}}, 100},
		{"source glob", Query{Source: "/var/log/app*"}, 100},
		{"source id", Query{Source: "s2", Hosts: []string{"web-1"}}, 50},
		{"since", Query{Since: time.Unix(0, t0+40)}, 40},
		{"until", Query{Until: time.Unix(0, t0+10)}, 40},
		{"grep", Query{Grep: regexp.MustCompile(`^line 4[0-9]$`)}, 40},
		{"nothing", Query{Source: "/nope"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.q.Project = "p"
			c.q.Limit = 7
			if got := len(queryAll(t, s, c.q)); got != c.want {
				t.Fatalf("%d lines, want %d", got, c.want)
			}
		})
	}
}

// TestAppendReusesBuffers: Append reuses its block and frame buffers per
// host; batches that shrink, grow past what is kept (4 MiB) and shrink
// again are all stored and read back byte for byte, and the records an
// Append returned stay intact after the next one.
func TestAppendReusesBuffers(t *testing.T) {
	s := openTestStore(t, t.TempDir(), StoreOptions{})
	srcs := []Source{{"s1", "/var/log/app.log"}}
	line := func(k int) []byte {
		// Lengths vary, so that a stale byte of a bigger block would show.
		return fmt.Appendf(nil, "line %07d %s", k, bytes.Repeat([]byte{byte('a' + k%26)}, k%700))
	}
	var want [][]byte
	k := 0
	var first Appended
	for i, n := range []int{2000, 3, 14000, 1, 500} { // 14000 × ~350 B: a block over 4 MiB
		rs := make([]logship.Record, n)
		for j := range rs {
			rs[j] = logship.Record{Offset: int64(k) * 1000, Time: int64(k), Data: line(k)}
			want = append(want, line(k))
			k++
		}
		r, err := s.Append("p", "h", srcs, rs)
		if err != nil || len(r.Stored) != n {
			t.Fatalf("batch %d: %d stored, %v", i, len(r.Stored), err)
		}
		if i == 0 {
			first = r
		}
	}
	for j, r := range first.Stored {
		if !bytes.Equal(r.Data, want[j]) {
			t.Fatalf("record %d returned by the first Append changed: %q", j, r.Data)
		}
	}
	got := queryAll(t, s, Query{Project: "p", Limit: 10000})
	if len(got) != len(want) {
		t.Fatalf("%d lines read back, want %d", len(got), len(want))
	}
	for j, l := range got {
		if !bytes.Equal(l.Data, want[j]) || l.Offset != int64(j)*1000 {
			t.Fatalf("line %d: offset %d %q, want %q", j, l.Offset, l.Data, want[j])
		}
	}
}

// TestAppendBatchAsIs: a batch whose records are all new and whose
// sources are used in their order (the last ones may have no records) is
// stored with the agent's zstd frame as it came; otherwise (repeats,
// sources first used out of order) the records are encoded again. Either way the lines
// read back are the batch's.
func TestAppendBatchAsIs(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, StoreOptions{})
	srcs := []Source{{"s1", "/var/log/a.log"}, {"s2", "/var/log/b.log"}}
	zblock := func(rs []logship.Record) []byte {
		var block []byte
		for i := range rs {
			block = logship.AppendRecord(block, &rs[i])
		}
		return logship.Compress(nil, block)
	}
	segs := func() []byte {
		var all []byte
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, rerr := os.ReadFile(path)
				all = append(all, b...)
				return rerr
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return all
	}
	var want []string
	for _, c := range []struct {
		name string
		recs []logship.Record
		asIs bool
	}{
		{"in order", append(recs(0, 0, 30, 1), recs(1, 0, 20, 1)...), true},
		{"repeats", append(recs(0, 25, 10, 1), recs(1, 20, 5, 1)...), false},
		{"the last source without records", recs(0, 35, 5, 1), true},
		{"sources out of order", append(recs(1, 25, 5, 1), recs(0, 40, 5, 1)...), false},
	} {
		z := zblock(c.recs)
		r, err := s.AppendBatch("p", "h", srcs, c.recs, z)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, x := range r.Stored {
			want = append(want, srcs[x.Source].ID+" "+string(x.Data))
		}
		if got := bytes.Contains(segs(), z); got != c.asIs {
			t.Fatalf("%s: frame stored as it came: %v, want %v", c.name, got, c.asIs)
		}
	}
	var got []string
	for _, l := range queryAll(t, s, Query{Project: "p", Limit: 1000}) {
		got = append(got, l.SourceID+" "+string(l.Data))
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(want) != 30+20+10+5+10 || !slices.Equal(got, want) { // repeats: 5 new of each source
		t.Fatalf("read back %d lines:\n%q\nwant %d:\n%q", len(got), got, len(want), want)
	}
}

func TestParseCursorBad(t *testing.T) {
	for _, in := range []string{"", "!!", "e30", "eyJoIjoiIn0", "eyJoIjoiYSIsInMiOjEsIm8iOjEsImkiOjB9", string(make([]byte, 2000))} {
		if _, err := ParseCursor(in); err == nil {
			t.Errorf("ParseCursor(%q): no error", in)
		}
	}
	c := &Cursor{Host: "a", Seg: 3, Off: 100, Idx: 2}
	got, err := ParseCursor(c.Encode())
	if err != nil || *got != *c {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add((&Cursor{Host: "a", Seg: 1, Off: 4}).Encode())
	f.Add("e30")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		if _, err := ParseCursor(c.Encode()); err != nil {
			t.Fatalf("a parsed cursor does not parse again: %v", err)
		}
	})
}
