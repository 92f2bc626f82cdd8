package journal

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/agentfleet/jkframe/fullfs"
)

// TestAppendNoSpace: on a real full file system (a tmpfs filled up), Append
// fails with ErrNoSpace (not ErrFull), takes no sequence number and leaves
// no partial record; once space comes back the same append succeeds, and a
// reopen replays every appended record exactly once.
func TestAppendNoSpace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnt")
	fullfs.Mount(t, dir, 256<<10)
	jdir := filepath.Join(dir, "journal")
	// The bound is far above the file system's size: the disk fills first.
	j, err := Open(jdir, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	payload := func(seq uint64) []byte { return fmt.Appendf(bytes.Repeat([]byte{'.'}, 1000), "msg-%d", seq) }
	var last uint64
	for i := range 10 { // a few before the disk is full
		if last, err = j.Append(payload(uint64(i + 1))); err != nil {
			t.Fatal(err)
		}
	}
	free := fullfs.Fill(t, dir)
	// The rest of the segment's last page can take a few records (up to 64
	// with 64 KiB pages).
	for i := 0; ; i++ {
		if i > 200 {
			t.Fatalf("%d records of 1 KB appended on a full file system", i)
		}
		seq, err := j.Append(payload(last + 1))
		if err == nil {
			last = seq
			continue
		}
		if !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrFull) {
			t.Fatalf("append on a full file system: %v, want ErrNoSpace", err)
		}
		t.Logf("append on a full file system: %v", err)
		break
	}
	size := j.Size()
	if _, err := j.Append(payload(last + 1)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("second append on a full file system: %v, want ErrNoSpace", err)
	}
	if got := j.NextSeq(); got != last+1 {
		t.Fatalf("NextSeq %d after failed appends, want %d (no number taken)", got, last+1)
	}
	if j.Size() != size {
		t.Fatalf("Size %d after a failed append, was %d", j.Size(), size)
	}
	free()
	seq, err := j.Append(payload(last + 1))
	if err != nil {
		t.Fatalf("append after space came back: %v", err)
	}
	if seq != last+1 {
		t.Fatalf("append after space came back: seq %d, want %d", seq, last+1)
	}
	last = seq
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, jdir, 64<<20)
	var got []uint64
	if err := j.Pending(func(seq uint64, p []byte) error {
		if !bytes.Equal(p, payload(seq)) {
			t.Errorf("record %d: payload %q", seq, p[1000:])
		}
		got = append(got, seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != int(last) || got[0] != 1 || got[len(got)-1] != last {
		t.Fatalf("replayed %v, want 1..%d once each", got, last)
	}
}
