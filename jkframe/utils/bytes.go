package utils

import (
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// Bytes is a size in bytes. Its text form uses binary units (see ParseBytes)
// and always decodes back to the same value.
type Bytes uint64

// Binary unit multipliers, smallest first; the index+1 is the power of 1024.
var byteUnits = [...]struct {
	letter byte
	mult   uint64
}{
	{'K', 1 << 10},
	{'M', 1 << 20},
	{'G', 1 << 30},
	{'T', 1 << 40},
	{'P', 1 << 50},
}

// ParseBytes parses a byte size: a decimal number, optionally followed by
// spaces and a unit K, M, G, T or P (powers of 1024), each optionally followed
// by "B" or "iB"; a bare number or a number followed by "B" is bytes. Units are
// case-insensitive. A fraction is accepted when the result is a whole number
// of bytes ("1.5K" = 1536). Values above 2⁶⁴-1 bytes are an error.
func ParseBytes(s string) (Bytes, error) {
	if s == "" {
		return 0, bytesError(s, "empty")
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.TrimLeft(s[i:], " ")
	if num == "" {
		return 0, bytesError(s, "missing number")
	}
	intPart, frac, _ := strings.Cut(num, ".")
	if strings.Contains(frac, ".") || intPart == "" && frac == "" {
		return 0, bytesError(s, fmt.Sprintf("malformed number %q", num))
	}
	mult, ok := byteMultiplier(unit)
	if !ok {
		return 0, bytesError(s, fmt.Sprintf("unknown unit %q", unit))
	}
	var whole uint64
	if intPart != "" {
		n, err := strconv.ParseUint(intPart, 10, 64)
		if err != nil {
			return 0, bytesError(s, "too large")
		}
		hi, lo := bits.Mul64(n, mult)
		if hi != 0 {
			return 0, bytesError(s, "too large")
		}
		whole = lo
	}
	frac = strings.TrimRight(frac, "0")
	if frac != "" {
		// Exact arithmetic: the fraction must contribute a whole number of bytes.
		f, _ := new(big.Int).SetString(frac, 10)
		f.Mul(f, new(big.Int).SetUint64(mult))
		den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
		q, r := new(big.Int).QuoRem(f, den, new(big.Int))
		if r.Sign() != 0 {
			return 0, bytesError(s, "not a whole number of bytes")
		}
		// q < mult, so it fits in a uint64.
		sum, carry := bits.Add64(whole, q.Uint64(), 0)
		if carry != 0 {
			return 0, bytesError(s, "too large")
		}
		whole = sum
	}
	return Bytes(whole), nil
}

func bytesError(s, why string) error {
	return fmt.Errorf("invalid byte size %q: %s", s, why)
}

// byteMultiplier maps a unit suffix ("", "B", "K", "KB", "KiB", ...) to its
// multiplier.
func byteMultiplier(unit string) (uint64, bool) {
	u := strings.ToUpper(unit)
	if u == "" || u == "B" {
		return 1, true
	}
	rest, ok := strings.CutSuffix(u, "IB")
	if !ok {
		rest, _ = strings.CutSuffix(u, "B")
	}
	if len(rest) != 1 {
		return 0, false
	}
	for _, bu := range byteUnits {
		if rest[0] == bu.letter {
			return bu.mult, true
		}
	}
	return 0, false
}

// String returns the size in the largest unit that divides it exactly, without
// a "B" suffix: "0", "512", "1536K", "10M".
func (b Bytes) String() string {
	for i := len(byteUnits) - 1; i >= 0; i-- {
		if m := byteUnits[i].mult; b != 0 && uint64(b)%m == 0 {
			return strconv.FormatUint(uint64(b)/m, 10) + string(byteUnits[i].letter)
		}
	}
	return strconv.FormatUint(uint64(b), 10)
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseBytes.
func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
