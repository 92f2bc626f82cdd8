package tail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/log-agent/internal/checkpoint"
	"github.com/agentfleet/log-agent/internal/project"
)

// TestCopyTruncateBetweenCheckAndRead: logrotate's copytruncate, and the
// writer going on past the reader's offset, after the tailer last checked
// the file's identity and before it reads (a tailer descheduled there on a
// busy machine; issue 17). The new file's bytes must not continue the old
// lineage: the old lineage goes on in the copy, where it was left, and the
// truncated file is a new lineage read from its start.
func TestCopyTruncateBetweenCheckAndRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	line := func(tag string, i int) string { return fmt.Sprintf("%s %06d %s\n", tag, i, strings.Repeat("x", 100)) }
	var oldText, newText strings.Builder
	var want []string
	for i := range 30 {
		oldText.WriteString(line("old", i))
		want = append(want, strings.TrimSuffix(line("old", i), "\n"))
	}
	for i := range 40 { // longer than the old file: past the reader's offset
		newText.WriteString(line("new", i))
		want = append(want, strings.TrimSuffix(line("new", i), "\n"))
	}
	// The writer is in the middle of line 20 when the tailer first reads.
	cut := 20*len(line("old", 0)) + 40
	writeFile(t, path, oldText.String()[:cut], os.O_CREATE|os.O_WRONLY)

	store, err := checkpoint.Open(filepath.Join(dir, "checkpoint.json"), "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := project.Decode([]byte(fmt.Sprintf(`{"name":"p","type":"logtail","paths":[%q],"read_from":"beginning"}`, filepath.ToSlash(path)+"*")))
	if err != nil {
		t.Fatal(err)
	}
	tl := New(Options{Project: p, Store: store, Poll: time.Millisecond, Scan: time.Hour,
		RotateWait: time.Minute, CloseIdle: time.Hour})
	tl.SetSpecs([]Spec{{Key: "paths", Patterns: []string{path + "*"}, Format: Plain}})
	var rotated atomic.Bool
	tl.beforeRead = func(f *file) {
		if rotated.Load() || f.path != path || f.off < int64(cut) {
			return
		}
		rotated.Store(true)
		// The writer finishes its lines, logrotate copies and truncates,
		// the writer goes on (O_APPEND) past the tailer's offset.
		writeFile(t, path, oldText.String()[cut:], os.O_APPEND|os.O_WRONLY)
		writeFile(t, path+".1", readFile(t, path), os.O_CREATE|os.O_WRONLY)
		if err := os.Truncate(path, 0); err != nil {
			t.Error(err)
		}
		writeFile(t, path, newText.String(), os.O_APPEND|os.O_WRONLY)
	}

	var (
		mu    sync.Mutex
		ids   []string
		byID  = map[string][]string{}
		count int
	)
	out := make(chan *Chunk)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx, out) }()
	go func() {
		for {
			select {
			case ck := <-out:
				mu.Lock()
				if _, ok := byID[ck.ID]; !ok {
					ids = append(ids, ck.ID)
					byID[ck.ID] = nil
				}
				for _, l := range ck.Lines {
					byID[ck.ID] = append(byID[ck.ID], string(l.Data))
					count++
				}
				mu.Unlock()
				ck.Release()
			case <-ctx.Done():
				return
			}
		}
	}()
	werr := eventually.WaitTrue(20*time.Second, "every line", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return count >= len(want)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !rotated.Load() {
		t.Fatal("the rotation did not happen")
	}
	mu.Lock()
	defer mu.Unlock()
	var got, short []string
	for _, id := range ids {
		short = append(short, "lineage "+id+":")
		for _, l := range byID[id] {
			got = append(got, l)
			short = append(short, l[:10])
		}
	}
	if werr != nil || strings.Join(got, "\n") != strings.Join(want, "\n") || len(ids) != 2 {
		t.Fatalf("got\n%s\nwant the old lines 0-29 then the new ones 0-39, in two lineages (%v)",
			strings.Join(short, "\n"), werr)
	}
}

func writeFile(t *testing.T, path, s string, flag int) {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Error(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}
