package compress

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logText returns n bytes of realistic, deterministic agent log lines.
func logText(n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	levels := []string{"INFO", "WARN", "DEBUG", "ERROR"}
	msgs := []string{
		"task finished", "upload chunk written", "connection re-established",
		"collect job ran", "handshake ok", "download block sent", "process exited",
	}
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "2026-11-24T13:%02d:%02d.%06dZ %s %s agent=%08x pid=%d bytes=%d took=%dms\n",
			i/60%60, i%60, r.IntN(1e6), levels[r.IntN(len(levels))], msgs[r.IntN(len(msgs))],
			r.Uint32(), r.IntN(65536), r.IntN(1<<20), r.IntN(5000))
	}
	return b.Bytes()[:n]
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewChaCha8([32]byte{2}))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// gzipped compresses into memory, where writes cannot fail.
func gzipped(data []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(data)
	_ = w.Close()
	return buf.Bytes()
}

// zstdRLEFrame hand-builds a zstd frame of n copies of one byte using RLE
// blocks: a few bytes per 128 KiB of output, the cheapest possible bomb.
// fcs declares the content size in the header (single-segment frame, the
// window is then the content size); otherwise windowLog is declared.
func zstdRLEFrame(n int, fcs bool, windowLog int) []byte {
	b := []byte{0x28, 0xB5, 0x2F, 0xFD}
	if fcs {
		b = append(b, 0xE0) // 8-byte FCS, single segment
		b = binary.LittleEndian.AppendUint64(b, uint64(n))
	} else {
		b = append(b, 0x00, byte(windowLog-10)<<3)
	}
	const blockMax = 128 << 10
	for n > 0 {
		size := min(n, blockMax)
		n -= size
		hdr := uint32(size)<<3 | 1<<1 // RLE block
		if n == 0 {
			hdr |= 1 // last block
		}
		b = append(b, byte(hdr), byte(hdr>>8), byte(hdr>>16), 'A')
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"empty":     {},
		"one byte":  {0},
		"short":     []byte("hello"),
		"text 32K":  logText(32 << 10),
		"random 4K": randomBytes(4 << 10),
		"zeros 1M":  make([]byte, 1<<20),
	}
	for name, data := range inputs {
		for _, m := range []Method{Raw, Gzip, Zstd} {
			t.Run(fmt.Sprintf("%s/%c", name, m), func(t *testing.T) {
				s, err := EncodeWith(m, data)
				if err != nil {
					t.Fatal(err)
				}
				if want := "$" + string(rune(m)) + "$"; !strings.HasPrefix(s, want) {
					t.Fatalf("prefix = %q, want %q", s[:3], want)
				}
				got, err := Decode(s, int64(len(data)))
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("round trip changed the data (%d bytes in, %d out)", len(data), len(got))
				}
			})
		}
		t.Run(name+"/Encode", func(t *testing.T) {
			got, err := Decode(Encode(data), 0)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Decode(Encode) = %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestEncodeChoosesSmaller(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want Method
	}{
		{"empty", nil, Raw},
		{"below threshold", bytes.Repeat([]byte("a"), minCompress-1), Raw},
		{"compressible at threshold", bytes.Repeat([]byte("a"), minCompress), Zstd},
		{"log text", logText(32 << 10), Zstd},
		{"random", randomBytes(32 << 10), Raw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Encode(tt.data)
			if Method(s[1]) != tt.want {
				t.Fatalf("Encode chose %q, want %q", s[1], tt.want)
			}
			if tt.want == Zstd && len(s) >= len(wrap(Raw, tt.data)) {
				t.Fatalf("zstd form (%d) is not smaller than raw (%d)", len(s), len(wrap(Raw, tt.data)))
			}
		})
	}
}

func TestEncodeWithUnknownMethod(t *testing.T) {
	_, err := EncodeWith('9', []byte("x"))
	if err == nil || err.Error() != `compress: unknown method '9'` {
		t.Fatalf("err = %v", err)
	}
}

// decodeCases are the bad inputs; they also seed FuzzDecode.
var decodeCases = []struct {
	name    string
	in      string
	max     int64
	wantErr error
	wantMsg string
}{
	{"empty", "", 10, ErrFormat, "compress: bad encoding: missing $N$ prefix"},
	{"no prefix", "aGVsbG8=", 10, ErrFormat, "compress: bad encoding: missing $N$ prefix"},
	{"half prefix", "$0aGVsbG8=", 10, ErrFormat, "compress: bad encoding: missing $N$ prefix"},
	{"unknown method", "$3$aGVsbG8=", 10, ErrFormat, "compress: bad encoding: unknown method '3'"},
	{"bad base64", "$0$aGVsbG8", 10, ErrFormat, "compress: bad encoding: base64: illegal base64 data at input byte 4"},
	{"bad base64 char", "$2$a*==", 10, ErrFormat, "compress: bad encoding: base64: illegal base64 data at input byte 1"},
	{"corrupt gzip header", "$1$" + b64([]byte("not gzip at all")), 100, ErrFormat, "compress: bad encoding: gzip: gzip: invalid header"},
	{"truncated gzip", "$1$" + b64(gzipped([]byte("hello hello hello"))[:15]), 100, ErrFormat, "compress: bad encoding: gzip: unexpected EOF"},
	{"corrupt zstd", "$2$" + b64([]byte("not zstd at all")), 100, ErrFormat, "compress: bad encoding: zstd: invalid input: magic number mismatch"},
	{"truncated zstd", "$2$" + b64(zstdRLEFrame(1000, true, 0)[:14]), 2000, ErrFormat, "compress: bad encoding: zstd: unexpected EOF"},
	{"raw over max", "$0$" + b64([]byte("hello")), 4, ErrTooLarge, "compress: decoded data exceeds limit"},
	{"raw over max by base64 length", "$0$" + b64(make([]byte, 30)), 4, ErrTooLarge, "compress: decoded data exceeds limit"},
	{"gzip over max", "$1$" + b64(gzipped(make([]byte, 1<<20))), 1000, ErrTooLarge, "compress: decoded data exceeds limit"},
	{"zstd over max", "$2$" + b64(zstdRLEFrame(5000, false, 20)), 1000, ErrTooLarge, "compress: decoded data exceeds limit"},
	{"zstd declared size over max", "$2$" + b64(zstdRLEFrame(1001, true, 0)), 1000, ErrTooLarge, "compress: decoded data exceeds limit"},
	{"zstd window over limit", "$2$" + b64(zstdRLEFrame(10, false, 29)), 1000, ErrTooLarge, "compress: decoded data exceeds limit: zstd: window size exceeded"},
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.in, tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode = %d bytes, err %v; want %v", len(got), err, tt.wantErr)
			}
			if err.Error() != tt.wantMsg {
				t.Fatalf("err = %q\nwant  %q", err, tt.wantMsg)
			}
		})
	}
}

func TestDecodeExactlyMax(t *testing.T) {
	data := logText(1000)
	for _, m := range []Method{Raw, Gzip, Zstd} {
		s, err := EncodeWith(m, data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(s, 1000); err != nil {
			t.Errorf("%c at max: %v", m, err)
		}
		if _, err := Decode(s, 999); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%c one over max: err = %v, want ErrTooLarge", m, err)
		}
	}
}

// TestZstdBomb checks that a few KiB expanding to 1 GiB is refused without
// the decoder allocating anything near the declared size.
func TestZstdBomb(t *testing.T) {
	const max = 1 << 20
	for _, tc := range []struct {
		name string
		fcs  bool
		wlog int
	}{
		{"declared size", true, 0},
		{"streamed with 8 MiB window", false, 23},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := "$2$" + b64(zstdRLEFrame(1<<30, tc.fcs, tc.wlog))
			if len(s) > 64<<10 {
				t.Fatalf("bomb is %d bytes, meant to be small", len(s))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Decode(s, max)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			// The bound is the 8 MiB decoder memory floor plus buffers.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
				t.Fatalf("decoding the bomb allocated %d MiB", alloc>>20)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, tt := range decodeCases {
		f.Add(tt.in, tt.max)
	}
	for _, m := range []Method{Raw, Gzip, Zstd} {
		s, _ := EncodeWith(m, logText(300))
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, s string, max int64) {
		// Keep the bound positive and small: an unbounded decode of fuzzed
		// input is allowed to use any amount of memory by contract.
		max = 1 + max&(1<<20-1)
		out, err := Decode(s, max)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither ErrFormat nor ErrTooLarge", err)
			}
			return
		}
		if int64(len(out)) > max {
			t.Fatalf("decoded %d bytes, max %d", len(out), max)
		}
		again, err := Decode(Encode(out), max)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("re-encode round trip failed: %v", err)
		}
	})
}

var benchInputs = []struct {
	name string
	data []byte
}{
	{"logtext", logText(32 << 10)},
	{"random", randomBytes(32 << 10)},
}

func BenchmarkEncode(b *testing.B) {
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				_ = Encode(in.data)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, in := range benchInputs {
		for _, m := range []Method{Raw, Gzip, Zstd} {
			s, err := EncodeWith(m, in.data)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%c", in.name, m), func(b *testing.B) {
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Decode(s, 1<<20); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
