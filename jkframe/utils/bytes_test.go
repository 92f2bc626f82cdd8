package utils

import (
	"testing"
)

var bytesGood = []struct {
	in   string
	want Bytes
	text string
}{
	{"0", 0, "0"},
	{"1", 1, "1"},
	{"512", 512, "512"},
	{"1536", 1536, "1536"},
	{"1024", 1 << 10, "1K"},
	{"10M", 10 << 20, "10M"},
	{"10MB", 10 << 20, "10M"},
	{"10MiB", 10 << 20, "10M"},
	{"10mib", 10 << 20, "10M"},
	{"10 MiB", 10 << 20, "10M"},
	{"10b", 10, "10"},
	{"1k", 1 << 10, "1K"},
	{"1G", 1 << 30, "1G"},
	{"2T", 2 << 40, "2T"},
	{"3P", 3 << 50, "3P"},
	{"1.5K", 1536, "1536"},
	{"1.5M", 1536 << 10, "1536K"},
	{"0.5K", 512, "512"},
	{".5K", 512, "512"},
	{"2.K", 2048, "2K"},
	{"1.000", 1, "1"},
	{"1.25M", 1280 << 10, "1280K"},
	{"16383P", 16383 << 50, "16383P"},
	{"18446744073709551615", 1<<64 - 1, "18446744073709551615"},
	{"16383.9990234375P", 1<<64 - 1<<40, "16777215T"},
	{"15.99999999999999911182158029987476766109466552734375P", 18014398509481983, "18014398509481983"},
}

var bytesBad = []struct {
	in, err string
}{
	{"", `invalid byte size "": empty`},
	{"M", `invalid byte size "M": missing number`},
	{"-1", `invalid byte size "-1": missing number`},
	{" 1", `invalid byte size " 1": missing number`},
	{".", `invalid byte size ".": malformed number "."`},
	{"1.2.3", `invalid byte size "1.2.3": malformed number "1.2.3"`},
	{"10X", `invalid byte size "10X": unknown unit "X"`},
	{"10KK", `invalid byte size "10KK": unknown unit "KK"`},
	{"10Ki", `invalid byte size "10Ki": unknown unit "Ki"`},
	{"10E", `invalid byte size "10E": unknown unit "E"`},
	{"10M ", `invalid byte size "10M ": unknown unit "M "`},
	{"1.1", `invalid byte size "1.1": not a whole number of bytes`},
	{"1.0001K", `invalid byte size "1.0001K": not a whole number of bytes`},
	{"16384P", `invalid byte size "16384P": too large`},
	{"18446744073709551616", `invalid byte size "18446744073709551616": too large`},
	{"18446744073709551615.5K", `invalid byte size "18446744073709551615.5K": too large`},
	{"16383.99999999999999999999P", `invalid byte size "16383.99999999999999999999P": not a whole number of bytes`},
}

func TestParseBytes(t *testing.T) {
	for _, tc := range bytesGood {
		got, err := ParseBytes(tc.in)
		if err != nil {
			t.Errorf("ParseBytes(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, want %d", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.text {
			t.Errorf("Bytes(%d).String() = %q, want %q", got, s, tc.text)
		}
	}
	for _, tc := range bytesBad {
		_, err := ParseBytes(tc.in)
		if err == nil || err.Error() != tc.err {
			t.Errorf("ParseBytes(%q) error = %v, want %s", tc.in, err, tc.err)
		}
	}
}

func TestBytesText(t *testing.T) {
	for _, v := range []Bytes{0, 1, 1023, 1024, 1025, 10 << 20, 1<<64 - 1, 1 << 63, 1536 << 40} {
		text, err := v.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Bytes
		if err := back.UnmarshalText(text); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", text, err)
		}
		if back != v {
			t.Errorf("round trip %d → %q → %d", v, text, back)
		}
	}
	var b Bytes = 7
	if err := b.UnmarshalText([]byte("x")); err == nil || b != 7 {
		t.Errorf("UnmarshalText(x) = %v, value %d; want an error and the value untouched", err, b)
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, tc := range bytesGood {
		f.Add(tc.in)
	}
	for _, tc := range bytesBad {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseBytes(s)
		if err != nil {
			return
		}
		text := v.String()
		back, err := ParseBytes(text)
		if err != nil {
			t.Fatalf("ParseBytes(%q) = %d, its String %q does not parse: %v", s, v, text, err)
		}
		if back != v {
			t.Fatalf("ParseBytes(%q) = %d → %q → %d", s, v, text, back)
		}
	})
}
