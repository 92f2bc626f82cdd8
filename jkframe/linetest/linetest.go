// Package linetest is for end-to-end tests of log collection: a Writer
// appends numbered lines to a file and rotates it the two ways logrotate
// does, and Check verifies that what was collected holds every line
// exactly once, in order within each source.
package linetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Line is the text of line i: "L" and i in nine digits, a space and 89
// x's (100 bytes).
func Line(i int) string { return fmt.Sprintf("L%09d %s", i, strings.Repeat("x", 89)) }

// Parse returns the number of a line made by Line.
func Parse(l string) (int, bool) {
	if len(l) < 10 || l[0] != 'L' {
		return 0, false
	}
	i, err := strconv.Atoi(l[1:10])
	return i, err == nil
}

// Writer appends numbered lines to Path, keeping Keep rotated files
// (Path.1 … Path.Keep). Not safe for concurrent use.
type Writer struct {
	Path string
	Keep int
	// N is the number of lines written; the next line is Line(N).
	N int
	// Size is the size of the current file.
	Size int64
	f    *os.File
}

// Open opens (or creates) Path for appending.
func (w *Writer) Open(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	must(t, err)
	w.f, w.Size = f, 0
}

// Write appends the next k lines in one write.
func (w *Writer) Write(t testing.TB, k int) {
	t.Helper()
	var b bytes.Buffer
	for range k {
		b.WriteString(Line(w.N))
		b.WriteByte('\n')
		w.N++
	}
	_, err := w.f.Write(b.Bytes())
	must(t, err)
	w.Size += int64(b.Len())
}

// Close closes the current file.
func (w *Writer) Close() error { return w.f.Close() }

func (w *Writer) shift() {
	os.Remove(fmt.Sprintf("%s.%d", w.Path, w.Keep))
	for i := w.Keep - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", w.Path, i), fmt.Sprintf("%s.%d", w.Path, i+1))
	}
}

// RotateRename is logrotate's create: rename, five late lines into the
// renamed file (the writer has not reopened yet), then reopen.
func (w *Writer) RotateRename(t testing.TB) {
	t.Helper()
	w.shift()
	must(t, os.Rename(w.Path, w.Path+".1"))
	w.Write(t, 5)
	w.f.Close()
	w.Open(t)
}

// RotateCopyTruncate is logrotate's copytruncate: copy to Path.1, then
// truncate Path in place.
func (w *Writer) RotateCopyTruncate(t testing.TB) {
	t.Helper()
	w.shift()
	src, err := os.Open(w.Path)
	must(t, err)
	dst, err := os.Create(w.Path + ".1")
	must(t, err)
	_, err = io.Copy(dst, src)
	must(t, err)
	src.Close()
	dst.Close()
	must(t, os.Truncate(w.Path, 0))
	w.Size = 0
}

// Check fails t unless bySource (the collected lines by source) holds
// Line(0) … Line(total-1), each exactly once and in increasing order within
// a source, and the sha256 of the collected lines in number order equals
// that of the lines written. It returns that sha256.
func Check(t testing.TB, total int, bySource map[string][]string) []byte {
	t.Helper()
	seen := make([]int32, total)
	byNum := make([]string, total)
	dups := 0
	for id, lines := range bySource {
		prev := -1
		for _, l := range lines {
			i, ok := Parse(l)
			if !ok || i >= total || l != Line(i) {
				t.Fatalf("source %s: bad line %q", id, l)
			}
			if i <= prev {
				t.Fatalf("source %s: line %d after %d", id, i, prev)
			}
			prev, byNum[i] = i, l
			seen[i]++
			if seen[i] > 1 {
				dups++
			}
		}
	}
	var missing []int
	for i, c := range seen {
		if c == 0 {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 || dups > 0 {
		t.Fatalf("%d lines missing (first %v), %d duplicated", len(missing), missing[:min(10, len(missing))], dups)
	}
	want, got := sha256.New(), sha256.New()
	for i := range total {
		io.WriteString(want, Line(i))
		io.WriteString(got, byNum[i])
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("sha256 of the collected lines differs from that of the lines written")
	}
	return want.Sum(nil)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
