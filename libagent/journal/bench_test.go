package journal

import "testing"

// BenchmarkAppend measures one append of a 1 KiB record (written to the
// kernel, not fsynced), acknowledging as it goes so the bound is never hit.
func BenchmarkAppend(b *testing.B) {
	benchAppend(b, 0)
}

// BenchmarkAppendSync100 adds a Sync every 100 appends, about what the
// runtime's 200 ms timer does under a steady stream of output chunks.
func BenchmarkAppendSync100(b *testing.B) {
	benchAppend(b, 100)
}

func benchAppend(b *testing.B, syncEvery int) {
	j, err := Open(b.TempDir(), 64<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	payload := make([]byte, 1024)
	b.SetBytes(int64(len(payload)))
	for i := 0; b.Loop(); i++ {
		seq, err := j.Append(payload)
		if err != nil {
			b.Fatal(err)
		}
		if syncEvery > 0 && i%syncEvery == syncEvery-1 {
			if err := j.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		if i%1000 == 999 {
			if err := j.Ack(seq); err != nil {
				b.Fatal(err)
			}
		}
	}
}
