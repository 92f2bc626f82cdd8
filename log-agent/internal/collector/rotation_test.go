package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/agentfleet/jkframe/eventually"
)

// TestZeroLossRotationsAndRestarts writes numbered lines while the file is
// rotated both ways logrotate does (rename+create, copytruncate) and the
// collector is stopped and started again from its checkpoints, and checks
// that every line arrived once, in order within each file lineage.
func TestZeroLossRotationsAndRestarts(t *testing.T) {
	for _, mode := range []string{"rename", "copytruncate", "mixed"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			logs := filepath.Join(dir, "logs")
			mkdir(t, logs)
			path := filepath.Join(logs, "app.log")
			const keep = 40
			w := newWriter(t, path, keep)
			defer w.close()
			w.write(10) // before the project's first start: read_from beginning takes them
			p := mustProject(t, fmt.Sprintf(`{"name":"rot","type":"logtail","paths":[%q],"read_from":"beginning","interval":1}`, path+"*"))
			sink := newRecSink()
			state := filepath.Join(dir, "state")
			r := start(t, p, state, sink, nil)
			const (
				total      = 40_000
				step       = 500
				rotateSize = 256 << 10 // ≈ 2,000 lines
			)
			rotations, restarts := 0, 0
			for k := 1; w.n < total; k++ {
				w.write(step)
				if w.bytes >= rotateSize {
					// Keep the collector within the rotated files kept
					// (what logrotate's "rotate N" promises to keep).
					eventually.True(t, "collector within the kept files", func() bool { return sink.count() > w.n-(keep-4)*2000 })
					switch {
					case mode == "rename" || mode == "mixed" && rotations%2 == 0:
						w.rotateRename()
					default:
						w.rotateCopyTruncate()
					}
					rotations++
				}
				if k%7 == 0 {
					r.stop(t)
					restarts++
					r = start(t, p, state, sink, nil)
				}
			}
			dump := func() {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				os.WriteFile(filepath.Join(os.TempDir(), "la-stacks.txt"), buf[:n], 0o644)
				seen := map[int]int{}
				for name, lines := range sink.byName(t) {
					first, last := "", ""
					if len(lines) > 0 {
						first, last = lines[0][:14], lines[len(lines)-1][:14]
					}
					t.Logf("source %s: %d lines %s … %s", name, len(lines), first, last)
					for _, l := range lines {
						var i int
						fmt.Sscanf(l, "line %d ", &i)
						seen[i]++
					}
				}
				var miss []int
				for i := 0; i < w.n; i++ {
					if seen[i] == 0 {
						miss = append(miss, i)
					}
				}
				if len(miss) > 0 {
					t.Logf("missing %d lines: %d … %d", len(miss), miss[0], miss[len(miss)-1])
				}
				for _, f := range listDir(logs) {
					fi, _ := os.Stat(f)
					t.Logf("file %s %d", f, fi.Size())
				}
				for _, c := range r.c.store.All() {
					t.Logf("checkpoint %+v", c)
				}
			}
			eventually.Poll{OnTimeout: dump}.True(t, fmt.Sprintf("every line (%d)", w.n), func() bool { return sink.count() >= w.n })
			r.stop(t)
			if t.Failed() || !checkOK(sink, w, w.n) {
				dump()
			}
			checkAll(t, sink, w, w.n)
			st := r.c.Status()
			t.Logf("%d lines, %d rotations, %d restarts, %d sources, %d batches; last run: %+v",
				w.n, rotations, restarts, len(sink.all()), sink.batches, st)
			if sink.count() != w.n {
				t.Fatalf("sink holds %d records for %d lines (duplicates after a clean restart)", sink.count(), w.n)
			}
		})
	}
}
