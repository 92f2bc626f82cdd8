package utils

import (
	"math"
	"testing"
	"time"
)

const day = 24 * time.Hour

var durationGood = []struct {
	in   string
	want time.Duration
	text string
}{
	{"0", 0, "0s"},
	{"-0", 0, "0s"},
	{"0s", 0, "0s"},
	{"1ns", 1, "1ns"},
	{"1us", time.Microsecond, "1us"},
	{"1µs", time.Microsecond, "1us"},
	{"1μs", time.Microsecond, "1us"},
	{"300ms", 300 * time.Millisecond, "300ms"},
	{"1500ms", 1500 * time.Millisecond, "1s500ms"},
	{"1.5s", 1500 * time.Millisecond, "1s500ms"},
	{"30s", 30 * time.Second, "30s"},
	{"90s", 90 * time.Second, "1m30s"},
	{"5m", 5 * time.Minute, "5m"},
	{"1h", time.Hour, "1h"},
	{"24h", day, "1d"},
	{"1d", day, "1d"},
	{"1d12h", 36 * time.Hour, "1d12h"},
	{"1.5d", 36 * time.Hour, "1d12h"},
	{"+2h45m", 2*time.Hour + 45*time.Minute, "2h45m"},
	{"-1.5h", -90 * time.Minute, "-1h30m"},
	{"1h1m1s1ms1us1ns", time.Hour + time.Minute + time.Second + time.Millisecond + time.Microsecond + 1, "1h1m1s1ms1us1ns"},
	{"1s1s", 2 * time.Second, "2s"},
	{".5s", 500 * time.Millisecond, "500ms"},
	{"1.s", time.Second, "1s"},
	{"0.3333333333333333333333333s", 333333333, "333ms333us333ns"},
	{"1.5ns", 1, "1ns"},
	{"9223372036854775807ns", math.MaxInt64, "106751d23h47m16s854ms775us807ns"},
	{"-9223372036854775808ns", math.MinInt64, "-106751d23h47m16s854ms775us808ns"},
	{"106751.99116730063d", 9223372036854774432, "106751d23h47m16s854ms774us432ns"},
}

var durationBad = []struct {
	in, err string
}{
	{"", `invalid duration "": empty`},
	{"-", `invalid duration "-": empty`},
	{"1", `invalid duration "1": missing unit`},
	{"1d2", `invalid duration "1d2": missing unit`},
	{"s", `invalid duration "s": expected a number`},
	{" 1s", `invalid duration " 1s": expected a number`},
	{"1s ", `invalid duration "1s ": unknown unit "s "`},
	{"--1s", `invalid duration "--1s": expected a number`},
	{".s", `invalid duration ".s": malformed number`},
	{"1w", `invalid duration "1w": unknown unit "w"`},
	{"1D", `invalid duration "1D": unknown unit "D"`},
	{"1y", `invalid duration "1y": unknown unit "y"`},
	{"9223372036854775808ns", `invalid duration "9223372036854775808ns": out of range`},
	{"-9223372036854775809ns", `invalid duration "-9223372036854775809ns": out of range`},
	{"106752d", `invalid duration "106752d": out of range`},
	{"99999999999999999999s", `invalid duration "99999999999999999999s": out of range`},
	{"9223372036854775807ns9223372036854775807ns", `invalid duration "9223372036854775807ns9223372036854775807ns": out of range`},
}

func TestParseDuration(t *testing.T) {
	for _, tc := range durationGood {
		got, err := ParseDuration(tc.in)
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseDuration(%q) = %d, want %d", tc.in, got, tc.want)
		}
		if s := FormatDuration(got); s != tc.text {
			t.Errorf("FormatDuration(%d) = %q, want %q", got, s, tc.text)
		}
	}
	for _, tc := range durationBad {
		_, err := ParseDuration(tc.in)
		if err == nil || err.Error() != tc.err {
			t.Errorf("ParseDuration(%q) error = %v, want %s", tc.in, err, tc.err)
		}
	}
}

// TestParseDurationMatchesGo checks that every form time.ParseDuration takes
// gives the same value here.
func TestParseDurationMatchesGo(t *testing.T) {
	for _, s := range []string{"1h2m3.5s", "-3.000000001s", "0.000000001s", "1.0000000005s", "2562047h", "-2562047h47m16.854775808s", "100µs"} {
		want, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("time.ParseDuration(%q): %v", s, err)
		}
		got, err := ParseDuration(s)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %d, %v; time.ParseDuration gives %d", s, got, err, want)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1d1s")); err != nil {
		t.Fatal(err)
	}
	if time.Duration(d) != day+time.Second {
		t.Errorf("UnmarshalText(1d1s) = %d", d)
	}
	text, err := d.MarshalText()
	if err != nil || string(text) != "1d1s" {
		t.Errorf("MarshalText = %q, %v; want 1d1s", text, err)
	}
	if d.String() != "1d1s" {
		t.Errorf("String = %q", d.String())
	}
	if err := d.UnmarshalText([]byte("x")); err == nil || time.Duration(d) != day+time.Second {
		t.Errorf("UnmarshalText(x) = %v, value %d; want an error and the value untouched", err, d)
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, tc := range durationGood {
		f.Add(tc.in)
	}
	for _, tc := range durationBad {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseDuration(s)
		if err != nil {
			return
		}
		text := Duration(v).String()
		back, err := ParseDuration(text)
		if err != nil {
			t.Fatalf("ParseDuration(%q) = %d, its String %q does not parse: %v", s, v, text, err)
		}
		if back != v {
			t.Fatalf("ParseDuration(%q) = %d → %q → %d", s, v, text, back)
		}
	})
}
