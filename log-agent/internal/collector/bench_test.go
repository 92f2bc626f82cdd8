package collector

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentfleet/log-agent/internal/sink"
	"github.com/agentfleet/log-agent/internal/tail"
)

// BenchmarkCollect: one file of 200-byte lines through the whole collector
// (tailer, batcher, zstd, spool, shipper) into a sink; MB/s of the file,
// and the process's CPU seconds per GB (user + system, from getrusage).
//
//	go test -run '^$' -bench Collect -benchtime 5x -count 5 ./internal/collector/
func BenchmarkCollect(b *testing.B) {
	const size = 256 << 20 / 200 * 200 // whole lines
	const lines = size / 200
	dir := b.TempDir()
	path := filepath.Join(dir, "app.log")
	writeLines(b, path, size)
	for _, c := range []struct {
		name   string
		buffer int
		sink   func() Sink
	}{
		{"discard/buffer=4096", 4096, func() Sink { return sink.Discard{} }},
		{"discard/buffer=1MiB", 1 << 20, func() Sink { return sink.Discard{} }},
		{"file/buffer=1MiB", 1 << 20, func() Sink {
			s, err := sink.NewFile(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(size)
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				p := mustProject(b, fmt.Sprintf(`{"name":"bench","type":"logtail","paths":[%q],"read_from":"beginning","buffer":%d,"batch":100000,"interval":1}`, path, c.buffer))
				sk := c.sink()
				col, err := New(Options{Project: p, Dir: filepath.Join(b.TempDir(), "state"), Sink: sk,
					Tail: tail.Options{Poll: 10 * time.Millisecond, CloseIdle: time.Hour}})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				before := cpuTime()
				b.StartTimer()
				go func() { done <- col.Run(ctx) }()
				for col.Status().ShippedLines < lines || col.Status().LagBytes > 0 {
					time.Sleep(time.Millisecond)
				}
				b.StopTimer()
				cpu += cpuTime() - before
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				if f, ok := sk.(*sink.File); ok {
					f.Close()
				}
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N)/(float64(size)/(1<<30)), "cpu-s/GB")
		})
	}
}

// writeLines writes size bytes of numbered 200-byte lines.
func writeLines(tb testing.TB, path string, size int) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	pad := make([]byte, 200-1-10-1)
	for i := range pad {
		pad[i] = 'a' + byte(i%26)
	}
	for i := 0; i < size/200; i++ {
		fmt.Fprintf(w, "%010d %s\n", i, pad)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
}
