package spool

import (
	"context"
	"strings"
	"testing"
)

// fill appends batches of 10 KiB (10 lines, 1000+i bytes each) from seq
// first until the spool has dropped up to seq upTo.
func fill(t *testing.T, s *Spool, upTo uint64) {
	t.Helper()
	for i := 0; s.Stats().Acked < upTo; i++ {
		if i > 1000 {
			t.Fatalf("seq %d not dropped after %d appends: %+v", upTo, i, s.Stats())
		}
		if _, err := s.Append(mk(i, 10<<10)); err != nil {
			t.Fatal(err)
		}
	}
}

// openFilled opens a spool in a temporary folder (closed at the end of the
// test) and appends n batches of size bytes.
func openFilled(t *testing.T, o Options, n, size int) *Spool {
	t.Helper()
	s, err := Open(t.TempDir(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := range n {
		if _, err := s.Append(mk(i, size)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// checkOnce: every batch appended is shipped, dropped, pending or
// unsettled, exactly one of them.
func checkOnce(t *testing.T, s *Spool) Stats {
	t.Helper()
	st := s.Stats()
	if got := st.ShippedBatches + st.DroppedBatches + int64(st.Pending+st.Unsettled); got != int64(st.Next-1) {
		t.Fatalf("shipped %d + dropped %d + pending %d + unsettled %d = %d, appended %d",
			st.ShippedBatches, st.DroppedBatches, st.Pending, st.Unsettled, got, st.Next-1)
	}
	return st
}

// TestFateOfBatchesInFlight: the bound deletes batches the Reader handed
// out. Acknowledged afterwards, they count shipped (the sink holds them);
// given up (Rewind), they count dropped; never both, never neither.
func TestFateOfBatchesInFlight(t *testing.T) {
	for _, c := range []struct {
		name string
		end  func(s *Spool, r *Reader, last uint64) error
		ship int64 // of the 3 in flight
	}{
		{"acknowledged after the drop", func(s *Spool, _ *Reader, last uint64) error { return s.Ack(last) }, 3},
		{"rewound after the drop", func(_ *Spool, r *Reader, _ uint64) error { r.Rewind(); return nil }, 0},
		{"reader closed after the drop", func(_ *Spool, r *Reader, _ uint64) error { r.Close(); return nil }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var dropped int64
			s := openFilled(t, Options{MaxBytes: MinSize, SegmentBytes: 64 << 10,
				OnDrop: func(d Drop) { dropped += int64(d.Batches) }}, 5, 10<<10)
			r := s.NewReader()
			defer r.Close()
			bs, err := r.Next(context.Background(), 3, 1<<30)
			if err != nil || len(bs) != 3 {
				t.Fatalf("next: %d %v", len(bs), err)
			}
			fill(t, s, 5)
			st := checkOnce(t, s)
			gone := int64(st.Acked) // deleted to make room: the 3 in flight and the rest counted
			if st.Unsettled != 3 || st.DroppedBatches != gone-3 || dropped != gone-3 {
				t.Fatalf("while in flight: the 3 handed out are unsettled, not dropped: %+v", st)
			}
			if err := c.end(s, r, bs[2].Seq); err != nil {
				t.Fatal(err)
			}
			st = checkOnce(t, s)
			if st.Unsettled != 0 || st.ShippedBatches != c.ship || st.DroppedBatches != gone-c.ship || dropped != st.DroppedBatches {
				t.Fatalf("shipped %d dropped %d (told %d), want %d shipped of %d", st.ShippedBatches, st.DroppedBatches, dropped, c.ship, gone)
			}
			if st.ShippedLines+st.DroppedLines != 10*gone {
				t.Fatalf("lines: %+v", st)
			}
		})
	}
}

// TestDropBetweenReadAndHandOut: a segment deleted after the Reader read
// its batches and before it handed them out takes them with it: they count
// dropped and are not handed out.
func TestDropBetweenReadAndHandOut(t *testing.T) {
	s := openFilled(t, Options{MaxBytes: MinSize, SegmentBytes: 64 << 10}, 3, 10<<10)
	once := true
	s.afterRead = func() {
		if once {
			once = false
			fill(t, s, 3)
		}
	}
	r := s.NewReader()
	defer r.Close()
	bs, err := r.Next(context.Background(), 3, 1<<30)
	if err != nil || len(bs) == 0 || bs[0].Seq <= 3 {
		t.Fatalf("next handed out %d batches from %d (%v), want only ones after 3", len(bs), bs[0].Seq, err)
	}
	if err := s.Ack(bs[len(bs)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if st := checkOnce(t, s); st.DroppedBatches < 3 || st.ShippedBatches != int64(len(bs)) {
		t.Fatalf("%+v", st)
	}
}

func TestAckNotHandedOut(t *testing.T) {
	s := openFilled(t, Options{MaxBytes: MinSize}, 3, 10)
	if err := s.Ack(2); err == nil || !strings.Contains(err.Error(), "not handed out") {
		t.Fatalf("ack of batches never read: %v", err)
	}
	if err := s.Ack(9); err == nil || !strings.Contains(err.Error(), "beyond") {
		t.Fatalf("ack beyond the end: %v", err)
	}
}
