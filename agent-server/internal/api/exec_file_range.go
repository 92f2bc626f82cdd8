package api

import (
	"errors"
	"strconv"
	"strings"
)

// byteRange is one parsed "Range: bytes=..." range. Start < 0 means a
// suffix range of the last Suffix bytes; End < 0 means to the end.
type byteRange struct {
	Start, End, Suffix int64
}

var errBadRange = errors.New("invalid Range header: want one range, bytes=first-last, bytes=first- or bytes=-suffix")

// parseRange parses a Range header with a single bytes range. ok is false
// when the unit is not bytes (the header is then ignored, RFC 9110).
func parseRange(h string) (r byteRange, ok bool, err error) {
	h = strings.TrimSpace(h)
	unit, spec, found := strings.Cut(h, "=")
	if !found {
		return r, false, errBadRange
	}
	if !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return r, false, nil
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return r, true, errBadRange
	}
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return r, true, errBadRange
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	num := func(s string) (int64, bool) {
		if s == "" || strings.TrimLeft(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if first == "" {
		n, ok := num(last)
		if !ok || n == 0 {
			return r, true, errBadRange
		}
		return byteRange{Start: -1, End: -1, Suffix: n}, true, nil
	}
	a, ok := num(first)
	if !ok {
		return r, true, errBadRange
	}
	if last == "" {
		return byteRange{Start: a, End: -1}, true, nil
	}
	b, ok := num(last)
	if !ok || b < a {
		return r, true, errBadRange
	}
	return byteRange{Start: a, End: b}, true, nil
}

// resolve applies r to a file of total bytes: offset and length (> 0), or
// false when the range is not satisfiable.
func (r byteRange) resolve(total int64) (off, length int64, ok bool) {
	if r.Start < 0 {
		n := min(r.Suffix, total)
		if n <= 0 {
			return 0, 0, false
		}
		return total - n, n, true
	}
	if r.Start >= total {
		return 0, 0, false
	}
	end := total - 1
	if r.End >= 0 && r.End < end {
		end = r.End
	}
	return r.Start, end - r.Start + 1, true
}
