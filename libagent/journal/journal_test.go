package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentfleet/jkframe/segfile"
)

type rec struct {
	seq uint64
	p   string
}

func pending(t *testing.T, j *Journal) []rec {
	t.Helper()
	var out []rec
	if err := j.Pending(func(seq uint64, p []byte) error {
		out = append(out, rec{seq, string(p)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantPending(t *testing.T, j *Journal, from, to uint64) {
	t.Helper()
	got := pending(t, j)
	var want []rec
	for s := from; s <= to && to != 0; s++ {
		want = append(want, rec{s, fmt.Sprintf("msg-%d", s)})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pending:\n got %v\nwant %v", got, want)
	}
}

func open(t *testing.T, dir string, max int64) *Journal {
	t.Helper()
	j, err := Open(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func appendN(t *testing.T, j *Journal, n int) {
	t.Helper()
	for range n {
		want := j.NextSeq()
		seq, err := j.Append(fmt.Appendf(nil, "msg-%d", want))
		if err != nil {
			t.Fatal(err)
		}
		if seq != want {
			t.Fatalf("Append returned seq %d, want %d", seq, want)
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	return m
}

func TestAppendAckReplayAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 4096) // segments of 512 bytes: ~22 records each
	if j.NextSeq() != 1 {
		t.Fatalf("fresh journal NextSeq %d", j.NextSeq())
	}
	appendN(t, j, 100)
	wantPending(t, j, 1, 100)
	if n := len(segFiles(t, dir)); n < 4 {
		t.Fatalf("%d segment files, want several", n)
	}
	if err := j.Ack(40); err != nil {
		t.Fatal(err)
	}
	wantPending(t, j, 41, 100)
	if err := j.Ack(30); err != nil { // going back is a no-op
		t.Fatal(err)
	}
	before := j.Size()
	j.Close()
	if _, err := j.Append(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}

	j = open(t, dir, 4096)
	if j.NextSeq() != 101 || j.Acked() != 40 || j.Size() != before {
		t.Fatalf("after reopen: next %d acked %d size %d (want 101 40 %d)", j.NextSeq(), j.Acked(), j.Size(), before)
	}
	wantPending(t, j, 41, 100)
	appendN(t, j, 5)
	wantPending(t, j, 41, 105)

	// Acking everything removes every segment but the active one (kept to
	// append to: recreating it per ack cost fsyncs), yet sequence numbers go on.
	if err := j.Ack(105); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("after full ack: %d segments, want only the active one", n)
	}
	wantPending(t, j, 0, 0)
	j.Close()
	j = open(t, dir, 4096)
	if j.NextSeq() != 106 {
		t.Fatalf("NextSeq after full ack and reopen: %d, want 106", j.NextSeq())
	}
	wantPending(t, j, 0, 0)
	appendN(t, j, 1)
	wantPending(t, j, 106, 106)
}

func TestAckErrors(t *testing.T) {
	j := open(t, t.TempDir(), 4096)
	appendN(t, j, 3)
	err := j.Ack(4)
	if err == nil || err.Error() != "journal ack 4: beyond the last sequence number 3" {
		t.Fatalf("got %v", err)
	}
}

func TestBound(t *testing.T) {
	dir := t.TempDir()
	const max = 1024
	j := open(t, dir, max)
	payload := bytes.Repeat([]byte("x"), 100) // 116-byte records
	var n int
	for {
		_, err := j.Append(payload)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != max/116 {
		t.Fatalf("accepted %d records, want %d", n, max/116)
	}
	var disk int64
	for _, f := range segFiles(t, dir) {
		fi, _ := os.Stat(f)
		disk += fi.Size()
	}
	if disk > max || disk != j.Size() {
		t.Fatalf("disk %d, Size %d, bound %d", disk, j.Size(), max)
	}
	if _, err := j.Append(make([]byte, max)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge record: %v", err)
	}
	// Acking the first segment frees room.
	if err := j.Ack(2); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(payload); err != nil {
		t.Fatalf("append after ack: %v", err)
	}
	if _, err := Open(t.TempDir(), 10); err == nil {
		t.Fatal("Open with a tiny bound succeeded")
	}
}

func TestTornWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(size int64) int64 // new size of the last segment
		keep uint64                 // records that survive
	}{
		{"half header", func(s int64) int64 { return s - 20 }, 4}, // last record is 16+5 bytes
		{"half payload", func(s int64) int64 { return s - 3 }, 4},
		{"clean", func(s int64) int64 { return s }, 5},
		{"everything", func(int64) int64 { return 5 }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := open(t, dir, 1<<20)
			appendN(t, j, 5)
			j.Close()
			segs := segFiles(t, dir)
			last := segs[len(segs)-1]
			fi, _ := os.Stat(last)
			if err := os.Truncate(last, tc.cut(fi.Size())); err != nil {
				t.Fatal(err)
			}
			j = open(t, dir, 1<<20)
			wantPending(t, j, 1, tc.keep)
			if j.NextSeq() != tc.keep+1 {
				t.Fatalf("NextSeq %d, want %d", j.NextSeq(), tc.keep+1)
			}
			appendN(t, j, 2)
			wantPending(t, j, 1, tc.keep+2)
		})
	}
}

func TestCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 1<<20)
	appendN(t, j, 5)
	j.Close()
	seg := segFiles(t, dir)[0]
	b, _ := os.ReadFile(seg)
	b[3*21+18] ^= 0xff // a payload byte of record 4 (records are 16+5 bytes)
	os.WriteFile(seg, b, 0o600)
	j = open(t, dir, 1<<20)
	wantPending(t, j, 1, 3)
	// Damaged ack file: replay from the start rather than fail.
	if err := j.Ack(2); err != nil {
		t.Fatal(err)
	}
	j.Close()
	os.WriteFile(filepath.Join(dir, segfile.AckedName), []byte("garbage"), 0o600)
	j = open(t, dir, 1<<20)
	wantPending(t, j, 1, 3)
}

func TestPendingStopsOnError(t *testing.T) {
	j := open(t, t.TempDir(), 4096)
	appendN(t, j, 3)
	boom := errors.New("boom")
	calls := 0
	err := j.Pending(func(uint64, []byte) error { calls++; return boom })
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	// Appending and acking from inside fn does not deadlock.
	err = j.Pending(func(seq uint64, _ []byte) error {
		if _, err := j.Append([]byte("more")); err != nil {
			return err
		}
		return j.Ack(seq)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzOpen(f *testing.F) {
	seed := func(n int) []byte {
		dir := f.TempDir()
		j, err := Open(dir, 1<<16)
		if err != nil {
			f.Fatal(err)
		}
		for i := range n {
			j.Append(fmt.Appendf(nil, "payload %d", i))
		}
		j.Close()
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%020d.seg", 1)))
		return b
	}
	full := seed(3)
	f.Add(full, []byte{})
	f.Add(full[:len(full)-4], []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, []byte("x"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, seg, acked []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), seg, 0o600)
		os.WriteFile(filepath.Join(dir, segfile.AckedName), acked, 0o600)
		j, err := Open(dir, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		last := uint64(0)
		err = j.Pending(func(seq uint64, _ []byte) error {
			if seq <= last || seq >= j.NextSeq() {
				return fmt.Errorf("seq %d after %d, next %d", seq, last, j.NextSeq())
			}
			last = seq
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		seq, err := j.Append([]byte("after"))
		if err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		if err == nil && seq <= last {
			t.Fatalf("new seq %d not after %d", seq, last)
		}
		if err := j.Ack(j.NextSeq() - 1); err != nil && !strings.Contains(err.Error(), "beyond") {
			t.Fatal(err)
		}
	})
}

// The acknowledged position is written lazily: a reopen after Sync (or
// Close) sees it, and it is always on disk before a wholly acknowledged
// segment is deleted, so sequence numbers never go back after a restart.
func TestAckPersistence(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 1<<20)
	appendN(t, j, 10)
	if err := j.Ack(4); err != nil {
		t.Fatal(err)
	}
	if got := segfile.ReadAcked(filepath.Join(dir, segfile.AckedName)); got != 0 {
		t.Fatalf("acked file = %d before Sync, want 0 (written lazily)", got)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := segfile.ReadAcked(filepath.Join(dir, segfile.AckedName)); got != 4 {
		t.Fatalf("acked file = %d after Sync, want 4", got)
	}
	if err := j.Ack(10); err != nil { // the active segment is kept: still lazy
		t.Fatal(err)
	}
	if got := segfile.ReadAcked(filepath.Join(dir, segfile.AckedName)); got != 4 {
		t.Fatalf("acked file = %d after an Ack that frees nothing, want 4 (lazy)", got)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: drop the journal without Close and reopen.
	j2, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if got := j2.NextSeq(); got != 11 {
		t.Fatalf("NextSeq after reopen = %d, want 11 (numbers must not be reused)", got)
	}
	j.Close()
}

func TestAdvanceTo(t *testing.T) {
	j := open(t, t.TempDir(), 1<<20)
	appendN(t, j, 3)
	j.AdvanceTo(2) // behind: no effect
	if got := j.NextSeq(); got != 4 {
		t.Fatalf("NextSeq = %d, want 4", got)
	}
	j.AdvanceTo(100)
	seq, err := j.Append([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if seq != 101 {
		t.Fatalf("seq after AdvanceTo(100) = %d, want 101", seq)
	}
}

// A wholly acknowledged active segment is rolled over when its space is
// needed, and the acknowledged position is stored before it is deleted.
func TestRollOverAckedActiveSegment(t *testing.T) {
	dir := t.TempDir()
	const max = 1024
	j := open(t, dir, max)
	payload := make([]byte, 100) // 116 bytes a record: 8 fit
	var last uint64
	for {
		seq, err := j.Append(payload)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	if err := j.Ack(last); err != nil {
		t.Fatal(err)
	}
	seq, err := j.Append(payload) // needs the acknowledged space back
	if err != nil {
		t.Fatalf("append after acking everything: %v", err)
	}
	if seq != last+1 {
		t.Fatalf("seq %d, want %d", seq, last+1)
	}
	if got := segfile.ReadAcked(filepath.Join(dir, segfile.AckedName)); got != last {
		t.Fatalf("acked file = %d, want %d before acknowledged segments are deleted", got, last)
	}
	if got := pending(t, j); len(got) != 1 || got[0].seq != last+1 {
		t.Fatalf("pending after roll-over: %v, want only seq %d", got, last+1)
	}
	if j.Size() > max {
		t.Fatalf("size %d over the bound %d", j.Size(), max)
	}
}
