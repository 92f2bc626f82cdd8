package client

import (
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"time"
)

func TestTimeUnmarshal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: `1767225600`, want: time.Unix(1767225600, 0)},
		{in: `1767225600.5`, want: time.Unix(1767225600, 5e8)},
		{in: `"1767225600"`, want: time.Unix(1767225600, 0)},
		{in: `"2026-01-01T00:00:00Z"`, want: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: `"2026-01-01T08:00:00.25+08:00"`, want: time.Date(2026, 1, 1, 0, 0, 0, 25e7, time.UTC)},
		{in: `"0001-01-01T00:00:00Z"`},
		{in: `0`},
		{in: `""`},
		{in: `null`},
		{in: `-5`, err: "want unix seconds"},
		{in: `"yesterday"`, err: "want RFC 3339 or unix seconds"},
		{in: `true`, err: "want unix seconds"},
		{in: `1e300`, err: "want unix seconds"},
		{in: `{}`, err: "want unix seconds"},
	} {
		var got Time
		err := json.Unmarshal([]byte(tc.in), &got)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.in, got.Time, tc.want)
		}
	}
}

func TestTimeMarshal(t *testing.T) {
	b, _ := json.Marshal(struct {
		A Time `json:"a"`
		B Time `json:"b,omitzero"`
		C Time `json:"c"`
	}{A: Time{time.Date(2026, 1, 1, 8, 0, 0, 0, time.FixedZone("x", 8*3600))}})
	if want := `{"a":"2026-01-01T00:00:00Z","c":null}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestFileMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want fs.FileMode
		err  bool
	}{
		{in: `2147484096`, want: fs.ModeDir | 0o700},   // 1.5: decimal os.FileMode
		{in: `420`, want: 0o644},                       // 1.5: a file
		{in: `"-rw-r--r--"`, want: 0o644},              // text form
		{in: `"drwxr-xr-x"`, want: fs.ModeDir | 0o755}, // directory
		{in: `"Lrwxrwxrwx"`, want: fs.ModeSymlink | 0o777},
		{in: `"dtrwxrwxrwx"`, want: fs.ModeDir | fs.ModeSticky | 0o777},
		{in: `"urwxr-xr-x"`, want: fs.ModeSetuid | 0o755},
		{in: `"Dcrw-rw----"`, want: fs.ModeDevice | fs.ModeCharDevice | 0o660},
		{in: `"420"`, want: 0o644},
		{in: `null`},
		{in: `"rw-r--r--"`, err: true},
		{in: `"-rwxrwxrwz"`, err: true},
		{in: `"Zrw-r--r--"`, err: true},
		{in: `-1`, err: true},
		{in: `99999999999`, err: true},
		{in: `""`, err: true},
	} {
		var got FileMode
		err := json.Unmarshal([]byte(tc.in), &got)
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error, got %v", tc.in, fs.FileMode(got))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if fs.FileMode(got) != tc.want {
			t.Errorf("%s: %v, want %v", tc.in, fs.FileMode(got), tc.want)
		}
	}
}

// FuzzTime checks that no input panics and that what decodes encodes and
// decodes again to the same instant.
func FuzzTime(f *testing.F) {
	for _, s := range []string{`1767225600`, `"2026-01-01T00:00:00Z"`, `null`, `"x"`, `1.5`, `""`, `-1`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var v Time
		if json.Unmarshal([]byte(in), &v) != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %v: %v", v.Time, err)
		}
		var back Time
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s → %s: %v", in, b, err)
		}
		if !back.Equal(v.Time) {
			t.Fatalf("%s → %s → %v, want %v", in, b, back.Time, v.Time)
		}
	})
}

// FuzzFileMode checks that the text form reads back to the same mode.
func FuzzFileMode(f *testing.F) {
	for _, s := range []string{`420`, `"-rw-r--r--"`, `"drwxr-xr-x"`, `2147484096`, `"dtrwxrwxrwx"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var m FileMode
		if json.Unmarshal([]byte(in), &m) != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back FileMode
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s → %s: %v", in, b, err)
		}
		// The text form drops bits fs.FileMode has no letter for.
		known := fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | fs.ModeAppend | fs.ModeExclusive | fs.ModeTemporary
		if fs.FileMode(back) != fs.FileMode(m)&known {
			t.Fatalf("%s → %s → %v, want %v", in, b, fs.FileMode(back), fs.FileMode(m)&known)
		}
	})
}
