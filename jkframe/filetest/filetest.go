// Package filetest writes and checks the large files that tests move
// between agentctl, the server and the agents: made on disk block by
// block (never held in memory) with their MD5 computed on the way, and
// digested back the same way.
package filetest

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"testing"
)

// Content is what Make fills a file with.
type Content int

const (
	// Compressible: one 64 KiB block repeated, its first byte changed per
	// block so that no two are alike. It compresses as well as logs do:
	// the transfer benchmarks' figures are with it.
	Compressible Content = iota
	// Noise: xorshift output, which compressors cannot shrink (media,
	// archives).
	Noise
)

// Make writes n bytes of content c to path and returns their MD5 (hex).
// The same n and c always give the same bytes.
func Make(t testing.TB, path string, n int64, c Content) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte(i*7 + i>>9)
	}
	x := uint32(2463534242)
	for off := int64(0); off < n; {
		switch c {
		case Noise:
			for i := 0; i < len(block); i += 4 {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				block[i], block[i+1], block[i+2], block[i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
			}
		default:
			block[0] = byte(off >> 16)
		}
		k := min(int64(len(block)), n-off)
		if _, err := w.Write(block[:k]); err != nil {
			t.Fatal(err)
		}
		off += k
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// MD5 returns the MD5 (hex) of the file at path and its size.
func MD5(t testing.TB, path string) (string, int64) {
	t.Helper()
	return Digest(t, path, md5.New())
}

// Digest returns the digest (hex) h makes of the file at path, and its
// size.
func Digest(t testing.TB, path string, h hash.Hash) (string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}
