package sink

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfleet/libagent/logship"

	"github.com/agentfleet/log-agent/internal/batch"
)

func mkBatch(offsets ...int64) *batch.Batch {
	var block []byte
	for _, o := range offsets {
		block = logship.AppendRecord(block, &logship.Record{Offset: o, Data: []byte{'a' + byte(o%26), 0xff, '\n'}})
	}
	return &batch.Batch{Project: "p", Lines: len(offsets), Sources: []batch.Source{{ID: "abc", Name: "/x.log"}},
		Data: logship.Compress(nil, block)}
}

func entries(t *testing.T, dir string) []Entry {
	f, err := os.Open(filepath.Join(dir, "p", "abc.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Entry
	if _, err := ReadEntries(f, func(e Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFileDedupAndRecovery: records delivered again are skipped, also
// after a reopen that finds a torn last entry.
func TestFileDedupAndRecovery(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Ship(context.Background(), []*batch.Batch{mkBatch(0, 10, 20), mkBatch(10, 20, 30)}); n != 2 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	s.Close()
	f, _ := os.OpenFile(filepath.Join(dir, "p", "abc.log"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("40 0 0 3\nb")) // torn by a crash
	f.Close()
	s, err = NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Ship(context.Background(), []*batch.Batch{mkBatch(20, 30, 40)}); n != 1 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	es := entries(t, dir)
	var offs []int64
	for _, e := range es {
		offs = append(offs, e.Offset)
	}
	if len(es) != 5 || offs[4] != 40 || string(es[0].Data) != "a\xff\n" {
		t.Fatalf("entries %v", offs)
	}
	names, err := Sources(dir, "p")
	if err != nil || names["abc"] != "/x.log" {
		t.Fatalf("%v %v", names, err)
	}
	bad := mkBatch(1)
	bad.Sources[0].ID = "../x"
	if _, err := s.Ship(context.Background(), []*batch.Batch{bad}); err == nil {
		t.Fatal("a source id with a path accepted")
	}
}
