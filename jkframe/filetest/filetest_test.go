package filetest

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

func TestMake(t *testing.T) {
	dir := t.TempDir()
	const n = 300<<10 + 3 // not a whole number of blocks
	for _, c := range []Content{Compressible, Noise} {
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		sumA, sumB := Make(t, a, n, c), Make(t, b, n, c)
		got, size := MD5(t, a)
		if sumA != sumB || got != sumA || size != n {
			t.Fatalf("content %d: Make %s and %s, MD5 %s of %d bytes", c, sumA, sumB, got, size)
		}
		data, _ := os.ReadFile(a)
		// No two blocks alike, whichever the content.
		if bytes.Equal(data[:64<<10], data[64<<10:128<<10]) {
			t.Fatalf("content %d: two blocks alike", c)
		}
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestSpeed)
		w.Write(data)
		w.Close()
		if small := z.Len() < n/4; small != (c == Compressible) {
			t.Fatalf("content %d: %d bytes deflate to %d", c, n, z.Len())
		}
	}
	if Make(t, filepath.Join(dir, "c"), 10, Compressible) == Make(t, filepath.Join(dir, "n"), 10, Noise) {
		t.Fatal("both contents alike")
	}
	if s, n := Digest(t, filepath.Join(dir, "c"), sha256.New()); len(s) != 64 || n != 10 {
		t.Fatalf("Digest = %s, %d", s, n)
	}
}
