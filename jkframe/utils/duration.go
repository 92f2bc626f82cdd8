package utils

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration whose text form accepts and writes the "d"
// (24 h) unit: "1d", "1d12h", "1m30s".
type Duration time.Duration

var durationUnits = map[string]uint64{
	"ns": uint64(time.Nanosecond),
	"us": uint64(time.Microsecond),
	"µs": uint64(time.Microsecond), // U+00B5 micro sign
	"μs": uint64(time.Microsecond), // U+03BC Greek mu
	"ms": uint64(time.Millisecond),
	"s":  uint64(time.Second),
	"m":  uint64(time.Minute),
	"h":  uint64(time.Hour),
	"d":  uint64(24 * time.Hour),
}

// formatUnits are the units FormatDuration writes, largest first.
var formatUnits = [...]struct {
	name string
	size uint64
}{
	{"d", uint64(24 * time.Hour)},
	{"h", uint64(time.Hour)},
	{"m", uint64(time.Minute)},
	{"s", uint64(time.Second)},
	{"ms", uint64(time.Millisecond)},
	{"us", uint64(time.Microsecond)},
	{"ns", uint64(time.Nanosecond)},
}

// ParseDuration parses a duration the way time.ParseDuration does (an
// optional sign, then a sequence of decimal numbers each with an optional
// fraction and a unit: "300ms", "-1.5h", "2h45m"), and also accepts "d" for 24
// hours ("1d", "1d12h"). Fractions finer than a nanosecond are truncated.
// Durations outside the range of time.Duration are an error.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, durationError(orig, "empty")
	}
	var total uint64
	for s != "" {
		// Integer part.
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		intPart := s[:i]
		s = s[i:]
		// Fraction.
		var frac string
		if s != "" && s[0] == '.' {
			s = s[1:]
			i = 0
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			frac = s[:i]
			s = s[i:]
			if intPart == "" && frac == "" {
				return 0, durationError(orig, "malformed number")
			}
		} else if intPart == "" {
			return 0, durationError(orig, "expected a number")
		}
		// Unit.
		i = 0
		for i < len(s) && s[i] != '.' && (s[i] < '0' || s[i] > '9') {
			i++
		}
		unitName := s[:i]
		s = s[i:]
		if unitName == "" {
			return 0, durationError(orig, "missing unit")
		}
		unit, ok := durationUnits[unitName]
		if !ok {
			return 0, durationError(orig, fmt.Sprintf("unknown unit %q", unitName))
		}
		v, ok := durationComponent(intPart, frac, unit)
		if !ok {
			return 0, durationError(orig, "out of range")
		}
		var carry uint64
		total, carry = bits.Add64(total, v, 0)
		if carry != 0 || total > 1<<63 {
			return 0, durationError(orig, "out of range")
		}
	}
	if neg {
		return time.Duration(-total), nil // -(1<<63) wraps to math.MinInt64 as wanted
	}
	if total > math.MaxInt64 {
		return 0, durationError(orig, "out of range")
	}
	return time.Duration(total), nil
}

// durationComponent returns (intPart.frac) × unit in nanoseconds, truncated,
// and false when it does not fit in a uint64.
func durationComponent(intPart, frac string, unit uint64) (uint64, bool) {
	var v uint64
	if intPart != "" {
		n, err := strconv.ParseUint(intPart, 10, 64)
		if err != nil {
			return 0, false
		}
		hi, lo := bits.Mul64(n, unit)
		if hi != 0 {
			return 0, false
		}
		v = lo
	}
	// Digits past the 19th weigh under 10⁻¹⁹ of a unit (under 10⁻⁵ ns for a
	// day); dropping them keeps the scale within a uint64.
	if len(frac) > 19 {
		frac = frac[:19]
	}
	if frac == "" {
		return v, true
	}
	f, _ := strconv.ParseUint(frac, 10, 64)
	scale := uint64(1)
	for range len(frac) {
		scale *= 10
	}
	// f < scale, so f×unit/scale < unit and the division cannot overflow.
	hi, lo := bits.Mul64(f, unit)
	q, _ := bits.Div64(hi, lo, scale)
	sum, carry := bits.Add64(v, q, 0)
	return sum, carry == 0
}

func durationError(s, why string) error {
	return fmt.Errorf("invalid duration %q: %s", s, why)
}

// FormatDuration writes d as a sequence of components from largest to
// smallest unit among d, h, m, s, ms, us and ns, leaving out zero components:
// 90s is "1m30s", 24h is "1d", 1500ms is "1s500ms", zero is "0s". The result
// parses back to exactly d with ParseDuration.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u // also right for math.MinInt64
	}
	for _, fu := range formatUnits {
		if n := u / fu.size; n > 0 {
			b.WriteString(strconv.FormatUint(n, 10))
			b.WriteString(fu.name)
			u -= n * fu.size
		}
	}
	return b.String()
}

// String returns the FormatDuration form.
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// MarshalText implements encoding.TextMarshaler with the String form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDuration.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
