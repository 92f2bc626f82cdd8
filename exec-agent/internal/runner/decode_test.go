package runner

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

func gbk(t testing.TB, s string) []byte {
	t.Helper()
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatalf("encode %q as GBK: %v", s, err)
	}
	return b
}

// decodeSplit feeds in to a fresh Decoder cut at the given offsets.
func decodeSplit(in []byte, cuts ...int) []byte {
	var d Decoder
	var out []byte
	prev := 0
	for _, c := range cuts {
		out = d.Decode(out, in[prev:c], false)
		prev = c
	}
	return d.Decode(out, in[prev:], true)
}

func TestDecoder(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, ""},
		{"ascii", []byte("hello\r\nworld"), "hello\r\nworld"},
		{"utf8", []byte("中文 ünïcødé 🙂 end"), "中文 ünïcødé 🙂 end"},
		{"gbk", gbk(t, "中文输出：成功\r\n"), "中文输出：成功\r\n"},
		{"gbk trail in ascii range", gbk(t, "丂a丄b"), "丂a丄b"},
		{"gbk amid ascii", append(append([]byte("ok: "), gbk(t, "你好世界")...), " done\n"...), "ok: 你好世界 done\n"},
		{"utf8 and gbk lines", append([]byte("中文\n"), gbk(t, "中文\n")...), "中文\n中文\n"},
		{"euro byte", []byte{0x80, 'x'}, "€x"},
		{"invalid 0xff", []byte{'a', 0xff, 'b'}, "a\ufffdb"},
		{"lone lead at eof", []byte{'a', 0xd6}, "a\ufffd"},
		// Not valid UTF-8, so read as GBK, where E4 B8 is a character.
		{"truncated utf8 at eof", []byte{'a', 0xe4, 0xb8}, "a涓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			whole := string(decodeSplit(tt.in))
			if whole != tt.want {
				t.Fatalf("whole: got %q, want %q", whole, tt.want)
			}
			// Every single cut and every pair of cuts gives the same text.
			for i := 0; i <= len(tt.in); i++ {
				if got := string(decodeSplit(tt.in, i)); got != tt.want {
					t.Fatalf("cut at %d: got %q, want %q", i, got, tt.want)
				}
				for j := i; j <= len(tt.in); j++ {
					if got := string(decodeSplit(tt.in, i, j)); got != tt.want {
						t.Fatalf("cuts at %d,%d: got %q, want %q", i, j, got, tt.want)
					}
				}
			}
			// One byte per read.
			cuts := make([]int, 0, len(tt.in))
			for i := 1; i < len(tt.in); i++ {
				cuts = append(cuts, i)
			}
			if got := string(decodeSplit(tt.in, cuts...)); got != tt.want {
				t.Fatalf("byte by byte: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecoderLongRunStreams(t *testing.T) {
	// A long non-ASCII run without ASCII is not held back forever.
	for _, in := range [][]byte{
		bytes.Repeat([]byte("中"), maxRun),
		gbk(t, string(bytes.Repeat([]byte("中"), maxRun))),
	} {
		var d Decoder
		var out []byte
		const fed = (maxRun/1000 + 1) * 1000
		for i := 0; i < fed; i += 1000 {
			out = d.Decode(out, in[i:i+1000], false)
		}
		if len(out) == 0 {
			t.Fatalf("nothing out after %d bytes of one run", fed)
		}
		out = d.Decode(out, in[fed:], false)
		out = d.Decode(out, nil, true)
		if want := string(bytes.Repeat([]byte("中"), maxRun)); string(out) != want {
			t.Fatalf("long run decoded to %d bytes, want %d", len(out), len(want))
		}
	}
}

func FuzzDecoder(f *testing.F) {
	f.Add([]byte("hello\r\n"), uint(3))
	f.Add([]byte("中文 🙂"), uint(1))
	f.Add(gbk(f, "中文输出：成功"), uint(5))
	f.Add(gbk(f, "丂a丄b"), uint(1))
	f.Add([]byte{0x80, 0xff, 0xd6}, uint(2))
	f.Fuzz(func(t *testing.T, in []byte, cut uint) {
		c := int(cut % uint(len(in)+1))
		whole := decodeSplit(in)
		split := decodeSplit(in, c)
		if !utf8.Valid(whole) || !utf8.Valid(split) {
			t.Fatalf("output is not UTF-8: %q / %q", whole, split)
		}
		if utf8.Valid(in) {
			if !bytes.Equal(whole, in) || !bytes.Equal(split, in) {
				t.Fatalf("valid UTF-8 changed: in %q, out %q / %q", in, whole, split)
			}
		}
	})
}

func BenchmarkDecoder(b *testing.B) {
	for _, in := range []struct {
		name string
		data []byte
	}{
		{"ascii", bytes.Repeat([]byte("line of plain output 12345\r\n"), 1200)},
		{"utf8", bytes.Repeat([]byte("中文输出 line\r\n"), 1800)},
		{"gbk", bytes.Repeat(gbk(b, "中文输出 line\r\n"), 2100)},
	} {
		b.Run(in.name, func(b *testing.B) {
			var d Decoder
			var out []byte
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				out = d.Decode(out[:0], in.data, false)
			}
		})
	}
}
