package l2cache

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dirEntries returns the names of the files in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// op is one step of an interleaving: write n bytes or read into an n-byte
// buffer.
type op struct {
	write bool
	n     int
}

// check runs ops against a Cache and a bytes.Buffer model and fails on the
// first difference. It returns the cache, still open.
func check(t *testing.T, c *Cache, ops []op, seed uint64) {
	t.Helper()
	var model bytes.Buffer
	next := byte(seed)
	for i, o := range ops {
		if o.write {
			p := make([]byte, o.n)
			for j := range p {
				p[j] = next
				next = next*31 + 7
			}
			n, err := c.Write(p)
			if err != nil || n != len(p) {
				t.Fatalf("op %d: Write(%d) = %d, %v", i, len(p), n, err)
			}
			model.Write(p)
		} else {
			got := make([]byte, o.n)
			n, err := c.Read(got)
			want := make([]byte, o.n)
			wn, werr := model.Read(want)
			if o.n == 0 {
				wn, werr = 0, nil
			}
			if werr == io.EOF && o.n > 0 {
				if err != io.EOF || n != 0 {
					t.Fatalf("op %d: Read on empty = %d, %v; want 0, EOF", i, n, err)
				}
			} else {
				if err != nil {
					t.Fatalf("op %d: Read: %v", i, err)
				}
				// Read may return fewer bytes than the model (memory and
				// disk are read separately): put the rest back.
				if n > wn || !bytes.Equal(got[:n], want[:n]) {
					t.Fatalf("op %d: Read = %q, want prefix of %q", i, got[:n], want[:wn])
				}
				rest := append(want[n:wn:wn], model.Bytes()...)
				model.Reset()
				model.Write(rest)
			}
		}
		if c.Len() != int64(model.Len()) {
			t.Fatalf("op %d: Len = %d, model %d", i, c.Len(), model.Len())
		}
	}
	// Drain and compare the rest.
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest, model.Bytes()) {
		t.Fatalf("drained %d bytes, model has %d (or contents differ)", len(rest), model.Len())
	}
}

func TestRandomInterleavings(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		threshold := []int{0, 1, 7, 64, 1000}[r.IntN(5)]
		var ops []op
		for range 1 + r.IntN(60) {
			ops = append(ops, op{write: r.IntN(2) == 0, n: r.IntN(3 * (threshold + 2))})
		}
		dir := t.TempDir()
		c := New(threshold, dir)
		check(t, c, ops, seed)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if names := dirEntries(t, dir); len(names) != 0 {
			t.Fatalf("seed %d: files left after Close: %v", seed, names)
		}
	}
}

func TestThresholdCrossing(t *testing.T) {
	dir := t.TempDir()
	c := New(10, dir)
	defer c.Close()

	if _, err := c.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if c.DiskLen() != 0 || len(dirEntries(t, dir)) != 0 {
		t.Fatalf("spilled at the threshold: disk %d, dir %v", c.DiskLen(), dirEntries(t, dir))
	}
	if _, err := c.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if c.DiskLen() != 3 || c.Len() != 13 || len(dirEntries(t, dir)) != 1 {
		t.Fatalf("after crossing: disk %d, len %d, dir %v", c.DiskLen(), c.Len(), dirEntries(t, dir))
	}
	// Reading memory frees room, but new bytes must queue behind the disk.
	buf := make([]byte, 4)
	if n, _ := c.Read(buf); string(buf[:n]) != "0123" {
		t.Fatalf("read %q", buf[:n])
	}
	c.Write([]byte("de"))
	if c.DiskLen() != 5 {
		t.Fatalf("write went to memory while bytes waited on disk: disk %d", c.DiskLen())
	}
	all, err := io.ReadAll(c)
	if err != nil || string(all) != "456789abcde" {
		t.Fatalf("ReadAll = %q, %v", all, err)
	}
	// Drained: the file is emptied and memory used again.
	c.Write([]byte("xyz"))
	if c.DiskLen() != 0 || c.Len() != 3 {
		t.Fatalf("after drain: disk %d len %d", c.DiskLen(), c.Len())
	}
	fi, err := os.Stat(c.file.Name())
	if err != nil || fi.Size() != 0 {
		t.Fatalf("spool file not truncated: %v %v", fi, err)
	}
}

func TestClosed(t *testing.T) {
	dir := t.TempDir()
	c := New(0, dir)
	if _, err := c.Write([]byte("spilled")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Fatalf("files left after Close: %v", names)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestBadDir(t *testing.T) {
	c := New(2, t.TempDir()+"/missing")
	defer c.Close()
	n, err := c.Write([]byte("abcd"))
	if n != 2 || err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Write = %d, %v; want 2 and a create error", n, err)
	}
	if got, _ := io.ReadAll(c); string(got) != "ab" {
		t.Fatalf("kept %q, want the bytes that fit in memory", got)
	}
}

// TestOneWriterOneReader streams bytes through a small threshold with a
// writer and a reader goroutine running at once.
func TestOneWriterOneReader(t *testing.T) {
	dir := t.TempDir()
	c := New(100, dir)
	const total = 1 << 20
	src := make([]byte, total)
	for i := range src {
		src[i] = byte(i*7 + i>>8)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(done)
		r := rand.New(rand.NewPCG(1, 2))
		for p := src; len(p) > 0; {
			k := min(len(p), 1+r.IntN(700))
			if _, err := c.Write(p[:k]); err != nil {
				t.Error(err)
				return
			}
			p = p[k:]
		}
	}()
	var got []byte
	buf := make([]byte, 513)
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF && finished && c.Len() == 0 {
			break
		}
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if !bytes.Equal(got, src) {
		t.Fatalf("got %d bytes, want %d (or contents differ)", len(got), len(src))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Fatalf("files left after Close: %v", names)
	}
}

// FuzzInterleave decodes ops from the fuzz bytes (even byte: write, odd:
// read; the next byte is the size) and checks them against the model.
func FuzzInterleave(f *testing.F) {
	f.Add(byte(0), []byte{0, 5, 1, 3, 0, 20, 1, 100})
	f.Add(byte(8), []byte{0, 8, 0, 1, 1, 4, 0, 9, 1, 255, 1, 1})
	f.Add(byte(255), []byte{0, 255, 0, 255, 1, 10})
	dir := f.TempDir() // one per fuzz process: t.TempDir per input is slow
	f.Fuzz(func(t *testing.T, threshold byte, data []byte) {
		var ops []op
		for i := 0; i+1 < len(data); i += 2 {
			ops = append(ops, op{write: data[i]%2 == 0, n: int(data[i+1])})
		}
		c := New(int(threshold), dir)
		check(t, c, ops, uint64(len(data)))
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if names := dirEntries(t, dir); len(names) != 0 {
			t.Fatalf("files left after Close: %v", names)
		}
	})
}
