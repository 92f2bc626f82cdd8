package spool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/log-agent/internal/batch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mk(i, size int) *batch.Batch {
	data := bytes.Repeat([]byte{byte(i)}, size)
	return &batch.Batch{Project: "p", Lines: 10, Bytes: 1000 + i,
		Sources: []batch.Source{{ID: "s", Name: "n", First: int64(i * 10), End: int64(i*10 + 10)}}, Data: data}
}

func TestAppendReadAckReopen(t *testing.T) {
	dir := t.TempDir()
	var persisted int
	s, err := Open(dir, Options{MaxBytes: MinSize, SegmentBytes: 4 << 10, Persist: func() error { persisted++; return nil }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		seq, err := s.Append(mk(i, 1000))
		if err != nil || seq != uint64(i) {
			t.Fatalf("append %d: %d %v", i, seq, err)
		}
	}
	r := s.NewReader()
	bs, err := r.Next(context.Background(), 7, 1<<20)
	if err != nil || len(bs) != 7 || bs[0].Seq != 1 || bs[6].Seq != 7 {
		t.Fatalf("next: %d %v", len(bs), err)
	}
	if err := s.Ack(7); err != nil {
		t.Fatal(err)
	}
	if persisted == 0 {
		t.Fatal("segments deleted without Persist")
	}
	if st := s.Stats(); st.Pending != 13 || st.Acked != 7 {
		t.Fatalf("stats %+v", st)
	}
	r.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: the acknowledged position and the rest survive; a torn frame
	// at the end is cut.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	last := segs[len(segs)-1]
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{200, 1, 0, 0, 'L', 'A'})
	f.Close()
	var seen []uint64
	s, err = Open(dir, Options{MaxBytes: MinSize, SegmentBytes: 4 << 10}, func(b *batch.Batch, acked bool) {
		if acked != (b.Seq <= 7) {
			t.Errorf("batch %d acked=%v", b.Seq, acked)
		}
		seen = append(seen, b.Seq)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if seen[len(seen)-1] != 20 {
		t.Fatalf("recovered %v", seen)
	}
	r = s.NewReader()
	defer r.Close()
	bs, err = r.Next(context.Background(), 100, 1<<20)
	if err != nil || len(bs) != 13 || bs[0].Seq != 8 {
		t.Fatalf("after reopen: %d batches from %d, %v", len(bs), bs[0].Seq, err)
	}
	if seq, err := s.Append(mk(21, 10)); err != nil || seq != 21 {
		t.Fatalf("append after reopen: %d %v", seq, err)
	}
}

// TestFullDropsOldestCounted: a spool that is not read fills up; the
// oldest batches are dropped, counted, reported to OnDrop, and a reader
// skips to what is left.
func TestFullDropsOldestCounted(t *testing.T) {
	var drops []Drop
	s, err := Open(t.TempDir(), Options{MaxBytes: MinSize, SegmentBytes: 64 << 10, OnDrop: func(d Drop) { drops = append(drops, d) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 200
	for i := 1; i <= n; i++ {
		if _, err := s.Append(mk(i, 10<<10)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Bytes > MinSize || st.DroppedBatches == 0 {
		t.Fatalf("stats %+v", st)
	}
	var sum int64
	for _, d := range drops {
		sum += int64(d.Batches)
	}
	if sum != st.DroppedBatches || st.DroppedLines != 10*st.DroppedBatches || int64(st.Pending)+st.DroppedBatches != n {
		t.Fatalf("drops %v do not add up: %+v", drops, st)
	}
	r := s.NewReader()
	defer r.Close()
	bs, err := r.Next(context.Background(), n, 1<<30)
	if err != nil || len(bs) != st.Pending || bs[0].Seq != uint64(st.DroppedBatches+1) || bs[len(bs)-1].Seq != n {
		t.Fatalf("reader: %d batches from %d, want %d from %d (%v)", len(bs), bs[0].Seq, st.Pending, st.DroppedBatches+1, err)
	}
}

func TestReaderWaitsAndCloses(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MaxBytes: MinSize}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := s.NewReader()
	defer r.Close()
	got := make(chan error, 1)
	go func() {
		bs, err := r.Next(context.Background(), 10, 1<<20)
		if err == nil && (len(bs) != 1 || bs[0].Seq != 1) {
			err = fmt.Errorf("got %d batches", len(bs))
		}
		got <- err
	}()
	if _, err := s.Append(mk(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := r.Next(context.Background(), 10, 1<<20)
		got <- err
	}()
	s.Close()
	select {
	case err := <-got:
		if err != ErrClosed {
			t.Fatalf("after close: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("reader not woken by Close")
	}
	if _, err := s.Append(mk(2, 10)); err != ErrClosed {
		t.Fatalf("append after close: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MaxBytes: MinSize}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Append(mk(1, MinSize)); err == nil {
		t.Fatal("a batch larger than half the spool was accepted")
	}
	if _, err := Open(t.TempDir(), Options{MaxBytes: 10}, nil); err == nil {
		t.Fatal("tiny bound accepted")
	}
}
