package store

import (
	"context"
	"testing"
)

// BenchmarkPutResults10k stores the results of a 10,000-agent fleet task
// (upserts after the first round) on each backend.
func BenchmarkPutResults10k(b *testing.B) {
	for _, bk := range []struct {
		name string
		nc   newConfig
	}{{"sqlite", sqliteTestConfig}, {"mysql", mysqlTestConfig}} {
		b.Run(bk.name, func(b *testing.B) {
			ctx := context.Background()
			s := openStore(b, bk.nc(b))
			task, err := s.CreateTask(ctx, Task{Kind: KindFleet})
			if err != nil {
				b.Fatal(err)
			}
			rs := tenK(task.ID)
			for b.Loop() {
				if err := s.PutResults(ctx, rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/10000, "µs/result")
		})
	}
}
