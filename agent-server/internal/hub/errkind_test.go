package hub

import (
	"testing"

	"github.com/agentfleet/libagent/protocol"
)

// legacyCases are messages of the jkstack 1.x agents (Go error texts) and
// the kind read from each.
var legacyCases = []struct {
	msg  string
	kind protocol.ErrKind
}{
	{"open /nope: no such file or directory", protocol.KindNotFound},
	{"chdir /srv/app: no such file or directory\n", protocol.KindNotFound},
	{"open C:\\nope.txt: The system cannot find the file specified.", protocol.KindNotFound},
	{"open C:\\no\\x.txt: The system cannot find the path specified.", protocol.KindNotFound},
	{"open /root/x: permission denied", protocol.KindDenied},
	{"open C:\\Windows\\x: Access is denied.", protocol.KindDenied},
	{"readdirent /etc/passwd: not a directory", protocol.KindUnprocessable},
	{"read /etc: is a directory", protocol.KindUnprocessable},
	{"fork/exec /bin/bash: argument list too long", protocol.KindUnprocessable},
	{"open /x/yyyy: file name too long", protocol.KindUnprocessable},
	{"user: unknown user bob", protocol.KindUnprocessable},
	{"chown /tmp/x: group: unknown group ops", protocol.KindUnprocessable},
	{"write /srv/x.part: no space left on device", protocol.KindNoSpace},
	{"write /home/u/x: disk quota exceeded", protocol.KindNoSpace},
	{"write C:\\x.part: There is not enough space on the disk.", protocol.KindNoSpace},
	{"", ""},
	{"unsupported message type 55", ""},
	{"fork/exec /bin/bash: invalid argument", ""},
	{"invalid checksum", ""},
	{"no such file or directory", ""}, // no ": " before it: not a wrapped errno
	{"open /x: no such file or directory (and then some)", ""},
	{"agent busy: 64 requests running", ""},
}

func TestLegacyKind(t *testing.T) {
	for _, c := range legacyCases {
		if got := LegacyKind(c.msg); got != c.kind {
			t.Errorf("LegacyKind(%q) = %q, want %q", c.msg, got, c.kind)
		}
	}
}

func FuzzLegacyKind(f *testing.F) {
	for _, c := range legacyCases {
		f.Add(c.msg)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		k := LegacyKind(msg)
		if k != "" && !k.Known() {
			t.Fatalf("LegacyKind(%q) = %q, not a known kind", msg, k)
		}
		if LegacyKind(msg) != k {
			t.Fatalf("LegacyKind(%q) not deterministic", msg)
		}
	})
}

// A session with errkind.v1 keeps the agent's kind (unknown kinds count as
// the agent's failure); one without reads it from the message.
func TestSessionAgentError(t *testing.T) {
	with := &Session{id: "a", caps: makeCapSet([]string{protocol.CapErrKind})}
	without := &Session{id: "b"}
	tests := []struct {
		s    *Session
		msg  string
		kind protocol.ErrKind
		want protocol.ErrKind
	}{
		{with, "open /x: no such file or directory", protocol.KindNotFound, protocol.KindNotFound},
		{with, "open /x: no such file or directory", "", ""}, // the agent says it is its own failure
		{with, "whatever", "teapot", ""},
		{with, "invalid path", protocol.KindInvalid, protocol.KindInvalid},
		{without, "open /x: no such file or directory", "", protocol.KindNotFound},
		{without, "open /x: no such file or directory", protocol.KindInvalid, protocol.KindNotFound}, // not negotiated: ignored
		{without, "disk on fire", "", ""},
	}
	for _, tt := range tests {
		e := tt.s.AgentError("t1", tt.msg, tt.kind)
		if e.Kind != tt.want || e.Msg != tt.msg || e.TID != "t1" || e.AgentID != tt.s.id {
			t.Errorf("%s AgentError(%q, %q) = %+v, want kind %q", tt.s.id, tt.msg, tt.kind, e, tt.want)
		}
	}
}
