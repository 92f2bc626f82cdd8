package hashcopy

import (
	"bytes"
	"crypto/md5"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// limitWriter takes max bytes, then fails (or writes short).
type limitWriter struct {
	buf    bytes.Buffer
	max    int
	short  bool
	writes []int
}

var errFull = errors.New("writer full")

func (w *limitWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	if w.buf.Len()+len(p) > w.max {
		if w.short {
			k := w.max - w.buf.Len()
			w.buf.Write(p[:k])
			return k, nil
		}
		return 0, errFull
	}
	return w.buf.Write(p)
}

// chunkReader returns data in pieces of at most n bytes, then err (io.EOF
// when nil) together with the last piece.
type chunkReader struct {
	data []byte
	n    int
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	k := copy(p, r.data[:min(len(r.data), r.n)])
	r.data = r.data[k:]
	if len(r.data) == 0 {
		if r.err != nil {
			return k, r.err
		}
		return k, io.EOF
	}
	return k, nil
}

func TestCopy(t *testing.T) {
	data := make([]byte, 1<<20+12345)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	errBroken := errors.New("connection reset")
	for _, tc := range []struct {
		name       string
		src        func() io.Reader
		max        int // writer capacity; 0: unlimited
		short      bool
		o          Options
		wantN      int
		wantErr    error
		wantWrites int // when > 0: how many writes reached the writer
	}{
		{"plain", func() io.Reader { return bytes.NewReader(data) }, 0, false, Options{}, len(data), nil, 0},
		{"empty", func() io.Reader { return bytes.NewReader(nil) }, 0, false, Options{}, 0, nil, 0},
		{"one byte reads", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:5000])) }, 0, false, Options{BufSize: 1000}, 5000, nil, 5000},
		{"one byte reads filled", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:5000])) }, 0, false,
			Options{BufSize: 1000, FillBuffers: true}, 5000, nil, 5},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }, 0, false, Options{}, len(data), nil, 0},
		{"small chunks filled", func() io.Reader { return &chunkReader{data: data, n: 4096} }, 0, false,
			Options{FillBuffers: true}, len(data), nil, (len(data) + DefaultBufSize - 1) / DefaultBufSize},
		{"source fails after data", func() io.Reader { return &chunkReader{data: data[:3000], n: 1000, err: errBroken} }, 0, false,
			Options{}, 3000, errBroken, 3},
		{"truncated multipart passed on", func() io.Reader { return &chunkReader{data: data[:3000], n: 700, err: io.ErrUnexpectedEOF} }, 0, false,
			Options{BufSize: 1024, FillBuffers: true}, 3000, io.ErrUnexpectedEOF, 3},
		{"source fails at once", func() io.Reader { return iotest.ErrReader(errBroken) }, 0, false, Options{}, 0, errBroken, 0},
		{"writer fails", func() io.Reader { return bytes.NewReader(data) }, 2500, false, Options{BufSize: 1000, Buffers: 2}, 2000, errFull, 3},
		{"short write", func() io.Reader { return bytes.NewReader(data) }, 2500, true, Options{BufSize: 1000}, 2000, io.ErrShortWrite, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &limitWriter{max: tc.max}
			if w.max == 0 {
				w.max = len(data) + 1
			}
			w.short = tc.short
			var progress []int64
			o := tc.o
			o.Progress = func(n int64) { progress = append(progress, n) }
			h := md5.New()
			n, err := Copy(w, tc.src(), h, o)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if n != int64(tc.wantN) {
				t.Fatalf("n = %d, want %d", n, tc.wantN)
			}
			if !bytes.Equal(w.buf.Bytes()[:n], data[:n]) {
				t.Fatal("bytes written differ from the source")
			}
			// The sum is over the bytes counted, nothing else.
			if want := md5.Sum(data[:n]); !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("md5 %x, want %x", h.Sum(nil), want)
			}
			if tc.wantWrites > 0 && len(w.writes) != tc.wantWrites {
				t.Errorf("%d writes, want %d", len(w.writes), tc.wantWrites)
			}
			size := o.BufSize
			if size == 0 {
				size = DefaultBufSize
			}
			for i, k := range w.writes {
				if k > size {
					t.Fatalf("write %d of %d bytes, over the %d-byte buffer", i, k, size)
				}
			}
			if n > 0 && (len(progress) == 0 || progress[len(progress)-1] != n) {
				t.Fatalf("progress %v does not end at %d", progress, n)
			}
			for i := 1; i < len(progress); i++ {
				if progress[i] <= progress[i-1] {
					t.Fatalf("progress not increasing: %v", progress)
				}
			}
		})
	}
}

// Any hash.Hash works: CRC-32C here, as agentctl's uploads use.
func TestCopyOtherHash(t *testing.T) {
	data := bytes.Repeat([]byte("checksum"), 100000)
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var out bytes.Buffer
	n, err := Copy(&out, bytes.NewReader(data), h, Options{BufSize: 4096, Buffers: 1})
	if err != nil || n != int64(len(data)) {
		t.Fatalf("n %d, err %v", n, err)
	}
	if got, want := h.(interface{ Sum32() uint32 }).Sum32(), crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)); got != want {
		t.Fatalf("crc %08x, want %08x", got, want)
	}
}

func BenchmarkCopy(b *testing.B) {
	data := make([]byte, 16<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Copy(io.Discard, bytes.NewReader(data), md5.New(), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
