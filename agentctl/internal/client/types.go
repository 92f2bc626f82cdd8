package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"time"
)

// Time is a point in time as the API sends it: unix seconds (the 1.5
// routes, a number or a numeric string) or an RFC 3339 string (the newer
// fields). Zero, null and "" decode to the zero Time. It encodes as
// RFC 3339 in UTC, so agentctl's own JSON output does not change with the
// server's choice.
type Time struct{ time.Time }

// UnmarshalJSON accepts a number, a numeric string, an RFC 3339 string or
// null.
func (t *Time) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseTime(s)
		if err != nil {
			return err
		}
		t.Time = v
		return nil
	}
	v, err := unixTime(string(b))
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// MarshalJSON writes RFC 3339 (UTC), or null for the zero time.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// precise returns the RFC 3339 form of a moment (the *_at fields, with
// sub-second precision) when the server sent it, else the 1.5 field.
func precise(at, legacy Time) Time {
	if !at.IsZero() {
		return at
	}
	return legacy
}

// ParseTime reads RFC 3339 or unix seconds; "" and "0" are the zero time.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if v.Year() <= 1 { // Go's zero time written as text
			return time.Time{}, nil
		}
		return v, nil
	}
	v, err := unixTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 or unix seconds", s)
	}
	return v, nil
}

// maxUnix is the first second of year 10000, which RFC 3339 cannot write.
const maxUnix = 253402300800

// unixTime reads seconds since the epoch, with an optional fraction.
func unixTime(s string) (time.Time, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f >= maxUnix {
		return time.Time{}, fmt.Errorf("time %q: want unix seconds or RFC 3339", s)
	}
	if f == 0 {
		return time.Time{}, nil
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// FileMode is a file's type and permission bits as the API sends them:
// Go's os.FileMode as a decimal number (1.5) or its text form
// ("drwxr-xr-x").
type FileMode fs.FileMode

// modeLetters are the type letters of fs.FileMode.String, bit 31 first.
const modeLetters = "dalTLDpSugct?"

// UnmarshalJSON accepts a number or the text form.
func (m *FileMode) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*m = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseFileMode(s)
		if err != nil {
			return err
		}
		*m = v
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("file mode %s: want a number or a mode string like -rw-r--r--", b)
	}
	*m = FileMode(n)
	return nil
}

// MarshalJSON writes the text form.
func (m FileMode) MarshalJSON() ([]byte, error) { return json.Marshal(fs.FileMode(m).String()) }

// ParseFileMode reads the text form of fs.FileMode ("-rw-r--r--",
// "drwxr-xr-x", "Lrwxrwxrwx", "dtrwxrwxrwx") or a decimal number.
func ParseFileMode(s string) (FileMode, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return FileMode(n), nil
	}
	bad := fmt.Errorf("file mode %q: want a mode string like -rw-r--r--", s)
	if len(s) < 10 {
		return 0, bad
	}
	perm, kind := s[len(s)-9:], s[:len(s)-9]
	var m fs.FileMode
	for i, c := range perm {
		switch {
		case c == '-':
		case c == rune("rwxrwxrwx"[i]):
			m |= 1 << (8 - i)
		default:
			return 0, bad
		}
	}
	if kind != "-" {
		for _, c := range kind {
			i := strings.IndexRune(modeLetters, c)
			if i < 0 {
				return 0, bad
			}
			m |= 1 << (31 - i)
		}
	}
	return FileMode(m), nil
}

// IsDir reports whether the mode is a directory's.
func (m FileMode) IsDir() bool { return fs.FileMode(m).IsDir() }

// Perm returns the permission bits.
func (m FileMode) Perm() fs.FileMode { return fs.FileMode(m).Perm() }
