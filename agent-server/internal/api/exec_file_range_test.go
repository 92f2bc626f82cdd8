package api

import "testing"

var rangeCases = []struct {
	in          string
	ok          bool
	err         bool
	total       int64
	off, length int64
	satisfiable bool
}{
	{"bytes=0-99", true, false, 1000, 0, 100, true},
	{"bytes=10-", true, false, 1000, 10, 990, true},
	{"bytes=-10", true, false, 1000, 990, 10, true},
	{"bytes=-5000", true, false, 1000, 0, 1000, true},
	{"bytes=990-5000", true, false, 1000, 990, 10, true},
	{" Bytes = 1-1 ", true, false, 1000, 1, 1, true},
	{"bytes=1000-", true, false, 1000, 0, 0, false},
	{"bytes=0-0", true, false, 0, 0, 0, false},
	{"bytes=-0", true, true, 0, 0, 0, false},
	{"bytes=5-1", true, true, 0, 0, 0, false},
	{"bytes=0-1,3-4", true, true, 0, 0, 0, false},
	{"bytes=a-b", true, true, 0, 0, 0, false},
	{"bytes=+1-2", true, true, 0, 0, 0, false},
	{"bytes=1", true, true, 0, 0, 0, false},
	{"bytes=99999999999999999999-", true, true, 0, 0, 0, false},
	{"items=0-1", false, false, 0, 0, 0, false},
	{"garbage", false, true, 0, 0, 0, false},
}

func TestParseRange(t *testing.T) {
	for _, tt := range rangeCases {
		r, ok, err := parseRange(tt.in)
		if ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("parseRange(%q) = %+v, %v, %v", tt.in, r, ok, err)
			continue
		}
		if err != nil {
			if err.Error() != "invalid Range header: want one range, bytes=first-last, bytes=first- or bytes=-suffix" {
				t.Errorf("parseRange(%q) error %q", tt.in, err)
			}
			continue
		}
		if !ok {
			continue
		}
		off, n, sat := r.resolve(tt.total)
		if sat != tt.satisfiable || sat && (off != tt.off || n != tt.length) {
			t.Errorf("%q on %d: %d+%d %v, want %d+%d %v", tt.in, tt.total, off, n, sat, tt.off, tt.length, tt.satisfiable)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, tt := range rangeCases {
		f.Add(tt.in, tt.total)
	}
	f.Fuzz(func(t *testing.T, in string, total int64) {
		r, ok, err := parseRange(in)
		if err != nil || !ok || total < 0 {
			return
		}
		off, n, sat := r.resolve(total)
		if sat && (off < 0 || n <= 0 || off+n > total) {
			t.Fatalf("%q on %d: %d+%d", in, total, off, n)
		}
	})
}
