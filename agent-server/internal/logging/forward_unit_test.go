package logging

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestNATSNames(t *testing.T) {
	o := ForwardOptions{StreamPrefix: "LOGS_", SubjectPrefix: "logs"}
	for _, tt := range []struct {
		project, host, stream, subject string
	}{
		{"web", "h1", "LOGS_web", "logs.web.h1"},
		{"web-2_x", "node-7", "LOGS_web-2_x", "logs.web-2_x.node-7"},
		// A dot, a space, a star: hex, so that no two names meet.
		{"a.b", "host.example.com", "LOGS__612e62", "logs._612e62._686f73742e6578616d706c652e636f6d"},
		{"a_b", "*", "LOGS_a_b", "logs.a_b._2a"},
		{"x", "_x", "LOGS_x", "logs.x._5f78"},
	} {
		if got := o.StreamName(tt.project); got != tt.stream {
			t.Errorf("StreamName(%q) = %q, want %q", tt.project, got, tt.stream)
		}
		if got := o.Subject(tt.project, tt.host); got != tt.subject {
			t.Errorf("Subject(%q, %q) = %q, want %q", tt.project, tt.host, got, tt.subject)
		}
	}
	if a, b := MsgID("p", "h", "s1", 10, 1), MsgID("p", "h", "s1", 10, 2); a == b {
		t.Errorf("two generations give one id %q", a)
	}
	if a, b := MsgID("p", "h", "s1", 10, 1), MsgID("p", "h", "s1", 11, 1); a == b || a != MsgID("p", "h", "s1", 10, 1) {
		t.Errorf("ids %q %q", a, b)
	}
}

func TestFwdCursorFile(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := loadFwdCursor(dir); ok || err != nil {
		t.Fatalf("missing cursor: %v %v", ok, err)
	}
	p := fwdCursor{V: 1, Pos: fwdPos{Seg: 3, Off: 1234, Idx: 7}, Seq: 99}
	if err := saveFwdCursor(dir, p); err != nil {
		t.Fatal(err)
	}
	got, ok, err := loadFwdCursor(dir)
	if !ok || err != nil || got != p {
		t.Fatalf("load: %+v %v %v", got, ok, err)
	}
	if _, err := filepath.Glob(filepath.Join(dir, "*.tmp")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ in, err string }{
		{``, "unexpected end of JSON input"},
		{`{`, "unexpected end"},
		{`[]`, "cannot unmarshal"},
		{`{"v":2,"pos":{"seg":1,"off":4,"idx":0}}`, "version 2"},
		{`{"v":1,"pos":{"seg":0,"off":4,"idx":0}}`, "out of range"},
		{`{"v":1,"pos":{"seg":1,"off":3,"idx":0}}`, "out of range"},
		{`{"v":1,"pos":{"seg":1,"off":4,"idx":-1}}`, "out of range"},
		{`{"v":1,"pos":{"seg":1,"off":4,"idx":999999999999}}`, "out of range"},
		{`{"v":1,"pos":{"seg":-1,"off":4,"idx":0}}`, "cannot unmarshal"},
		{`{"v":1,"pos":{"seg":1,"off":4,"idx":0},"seq":-5}`, "cannot unmarshal"},
	} {
		_, err := decodeFwdCursor([]byte(tt.in))
		if !errors.Is(err, errBadFwdCursor) || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("decodeFwdCursor(%q) = %v, want %q", tt.in, err, tt.err)
		}
	}
	if c, err := decodeFwdCursor([]byte(`{"v":1,"pos":{"seg":1,"off":4,"idx":0}}`)); err != nil || c.Pos != (fwdPos{1, 4, 0}) || c.Seq != 0 {
		t.Errorf("good cursor: %+v %v", c, err)
	}
}

// FuzzDecodeFwdCursor: a cursor file read back from disk (damaged by a
// crash or by hand) gives a position in range or an error, never a panic.
func FuzzDecodeFwdCursor(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"v":1,"pos":{"seg":1,"off":4,"idx":0}}`, `{"v":1,"pos":{"seg":18446744073709551615,"off":9223372036854775807,"idx":1}}`,
		`{"v":1,"pos":{"seg":1,"off":4,"idx":-1}}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeFwdCursor(b)
		if err == nil && (c.Pos.Seg == 0 || c.Pos.Off < 4 || c.Pos.Idx < 0) {
			t.Fatalf("accepted %+v from %q", c, b)
		}
	})
}

func TestFailReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errNotConnected, "connection"},
		{errors.Join(errStream, errors.New("x")), "stream"},
		{errors.New("x"), "other"},
	} {
		if got := failReason(tt.err); got != tt.want {
			t.Errorf("failReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if got := redactURLs("nats://u:secret@h:4222, tls://h2:4222"); strings.Contains(got, "secret") || !strings.Contains(got, "h2:4222") {
		t.Errorf("redactURLs: %q", got)
	}
}
