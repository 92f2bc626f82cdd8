package protocol

import (
	"math"
	"strconv"
	"strings"
)

// MD5 is a 16-byte digest. encoding/json writes a byte array as an array of
// 16 numbers ([12,250,...]), which is the v1 form; never hex.
type MD5 = [16]byte

// F2 is a float sent with at most two decimals. NaN and ±Inf, which JSON
// cannot carry, are sent as 0.
type F2 float64

// MarshalJSON implements json.Marshaler.
func (f F2) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("0"), nil
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" {
		s = "0"
	}
	return []byte(s), nil
}
