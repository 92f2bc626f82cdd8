package logging

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The same record in every benchmark: a typical request line, about 130
// bytes of text.
func logLine(l *slog.Logger, i int) {
	l.Info("request done", "method", "GET", "path", "/api/agents/42/logs", "status", 200, "dur", 1500*time.Microsecond, "n", i)
}

func reportLines(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkSlogFile is the baseline: slog's text handler straight to a file.
func BenchmarkSlogFile(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "plain.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	l := slog.New(slog.NewTextHandler(f, nil))
	n := 0
	for b.Loop() {
		logLine(l, n)
		n++
	}
	reportLines(b, n)
}

func benchLogger(b *testing.B, maxSize int64) {
	b.Setenv(EnvLevel, "")
	l, err := New(Options{Targets: []string{"file"}, Dir: b.TempDir(), Name: "bench", MaxSize: maxSize, Rotate: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	n := 0
	for b.Loop() {
		logLine(l.Logger, n)
		n++
	}
	reportLines(b, n)
}

// BenchmarkLoggingFile is ours to a file, with a size limit never reached.
func BenchmarkLoggingFile(b *testing.B) { benchLogger(b, 1<<40) }

// BenchmarkLoggingRotate is ours with a 1 MiB limit, so it rotates every
// ~8000 lines and lumberjack prunes to 3 rotated files meanwhile.
func BenchmarkLoggingRotate(b *testing.B) { benchLogger(b, 1<<20) }
