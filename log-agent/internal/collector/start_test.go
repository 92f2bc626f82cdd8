package collector

import (
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/agentfleet/jkframe/eventually"
)

// TestReadFromEndAndCompressedSkipped: a new project with read_from end
// starts after the last complete line of the files present; files created
// later are read from their beginning; a gzip rotation is skipped; a
// restart does not apply read_from again.
func TestReadFromEndAndCompressedSkipped(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "a.log")
	if err := os.WriteFile(old, []byte("before 1\nbefore 2\npartial"), 0o644); err != nil {
		t.Fatal(err)
	}
	gz, _ := os.Create(filepath.Join(dir, "a.log.2.gz"))
	zw := gzip.NewWriter(gz)
	fmt.Fprintf(zw, "compressed line\n")
	zw.Close()
	gz.Close()
	p := mustProject(t, fmt.Sprintf(`{"name":"end","type":"logtail","paths":[%q],"interval":1}`, filepath.Join(dir, "a.log*")))
	sink := newRecSink()
	state := filepath.Join(dir, "state")
	r := start(t, p, state, sink, nil)
	eventually.True(t, "the old file followed", func() bool { return r.c.Status().Files == 1 })
	appendTo(t, old, " rest\nafter 1\n")
	if err := os.WriteFile(filepath.Join(dir, "a.log.new"), []byte("new file line 1\nnew file line 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "4 lines", func() bool { return sink.count() >= 4 })
	r.stop(t)
	appendTo(t, old, "while stopped\n")
	r = start(t, p, state, sink, nil)
	eventually.True(t, "5 lines", func() bool { return sink.count() >= 5 })
	r.stop(t)
	var got []string
	for _, lines := range sink.byName(t) {
		got = append(got, lines...)
	}
	slices.Sort(got)
	want := []string{"after 1", "new file line 1", "new file line 2", "partial rest", "while stopped"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
