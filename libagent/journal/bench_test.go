package journal

import "testing"

// BenchmarkAppend measures one durable (fsynced) append of a 1 KiB record,
// acknowledging as it goes so the bound is never hit.
func BenchmarkAppend(b *testing.B) {
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
		if i%1000 == 999 {
			if err := j.Ack(seq); err != nil {
				b.Fatal(err)
			}
		}
	}
}
