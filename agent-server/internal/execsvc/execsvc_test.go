package execsvc

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTransfers(t *testing.T) {
	x := transfers{m: map[string]*transfer{}}
	live := x.add(&transfer{}, time.Minute)
	old := x.add(&transfer{}, -time.Second)
	tests := []struct {
		id, token string
		err       error
	}{
		{"nope", live.token, ErrTransferNotFound},
		{live.id, "", ErrTransferToken},
		{live.id, live.token + "x", ErrTransferToken},
		{old.id, old.token, ErrTransferNotFound}, // expired
		{live.id, live.token, nil},
		{live.id, live.token, ErrTransferNotFound}, // single use
	}
	for i, tt := range tests {
		if _, err := x.take(tt.id, tt.token); !errors.Is(err, tt.err) && !(err == nil && tt.err == nil) {
			t.Errorf("%d: take = %v, want %v", i, err, tt.err)
		}
	}
	if len(live.token) != 43 || len(live.id) != 32 {
		t.Errorf("token %q id %q", live.token, live.id)
	}
}

func TestRing(t *testing.T) {
	r := ring{size: 5}
	var all []byte
	for _, s := range []string{"ab", "cdefgh", "", "i", "jk", "lmnopqrstu", "v"} {
		r.write([]byte(s))
		all = append(all, s...)
		want := all[max(0, len(all)-5):]
		if got := r.bytes(); !bytes.Equal(got, want) {
			t.Fatalf("after %q: %q, want %q", s, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, tt := range []struct {
		name string
		why  string // "" = valid
	}{
		{"a.txt", ""}, {"..a", ""}, {"中文 name.txt", ""}, {strings.Repeat("n", 255), ""},
		{"", "is not a plain file name"}, {".", "is not a plain file name"}, {"..", "is not a plain file name"},
		{"a/b", "is not a plain file name"}, {`a\b`, "is not a plain file name"},
		{"a\x00", "has a control character"}, {"a\x01b", "has a control character"}, {"new\nline", "has a control character"},
		{"del\x7f", "has a control character"}, {"c1\u0085", "has a control character"}, {"\x1b[2J", "has a control character"},
		{"bad\xff", "is not valid UTF-8"}, {strings.Repeat("n", 256), "is longer than 255 bytes"},
	} {
		err := ValidName(tt.name)
		if (err == nil) != (tt.why == "") || err != nil && !strings.HasSuffix(err.Error(), tt.why) {
			t.Errorf("ValidName(%q) = %v, want %q", tt.name, err, tt.why)
		}
	}
}

func TestSplitPath(t *testing.T) {
	for _, tt := range []struct{ in, dir, name string }{
		{"/var/log/x", "/var/log", "x"}, {"/x", "/", "x"}, {`C:\a\b.txt`, `C:\a`, "b.txt"}, {`C:\b`, `C:\`, "b"}, {"x", ".", "x"},
	} {
		if d, n := splitPath(tt.in); d != tt.dir || n != tt.name {
			t.Errorf("splitPath(%q) = %q %q", tt.in, d, n)
		}
	}
}

func TestSpoolLimit(t *testing.T) {
	dir := t.TempDir()
	sp, err := NewSpool(dir, strings.NewReader("hello"), 5)
	if err != nil || sp.Size != 5 {
		t.Fatalf("spool: %v", err)
	}
	sp.Close()
	if _, err := NewSpool(dir, strings.NewReader("hello!"), 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over limit: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("spool files left: %v", es)
	}
}
