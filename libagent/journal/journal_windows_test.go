package journal

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/windows"
)

// Windows refuses to delete a file that is open: a segment being replayed
// (Pending) cannot be deleted by an Ack meanwhile. The Ack reports it and
// keeps the segment counted; the next Ack deletes it.
func TestAckWhileReplaying(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 1024) // 128-byte segments
	appendN(t, j, 20)
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	first := segs[0]
	var ackErr error
	calls := 0
	err := j.Pending(func(seq uint64, _ []byte) error {
		if calls++; calls == 1 { // the first segment is open now
			ackErr = j.Ack(10)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(ackErr, windows.ERROR_SHARING_VIOLATION) {
		t.Fatalf("Ack while the segment is read: %v, want a sharing violation", ackErr)
	}
	if !slices.Contains(segFiles(t, dir), first) {
		t.Fatalf("%s deleted while open", first)
	}
	if j.Acked() != 10 {
		t.Fatalf("acked %d, want 10 (the position moves even when a file stays)", j.Acked())
	}
	if err := j.Ack(11); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(segFiles(t, dir), first) {
		t.Fatalf("%s still there after the next Ack", first)
	}
	wantPending(t, j, 12, 20)
}
