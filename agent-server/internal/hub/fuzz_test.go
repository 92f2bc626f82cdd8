package hub

import (
	"strings"
	"testing"

	"github.com/agentfleet/libagent/protocol"
)

var comeCases = []struct {
	frame  string
	id     string
	reason string
}{
	{`{"type":1,"come":{"id":"","name":"exec-agent"}}`, "", ""},
	{`{"type":1,"come":{"id":"agent-20261124-0123456789abcdef","caps":["auth.v1"],"secret":"x"}}`, "agent-20261124-0123456789abcdef", ""},
	{`{"type":1,"come":{"id":"主机-1"}}`, "主机-1", ""},
	{`{"type":1,"come":{"id":"a b"}}`, "", reasonBadID},
	{`{"type":1,"come":{"id":"a\u0000"}}`, "", reasonBadID},
	{`{"type":1,"come":{"id":"` + strings.Repeat("x", maxIDLen+1) + `"}}`, "", reasonBadID},
	{`{"type":1,"come":{"id":"\xff"}}`, "", reasonNotCome},        // invalid JSON escape
	{"{\"type\":1,\"come\":{\"id\":\"a\xff\"}}", "", reasonBadID}, // invalid UTF-8
	{`{"type":1}`, "", reasonNotCome},
	{`{"type":8}`, "", reasonNotCome},
	{`{"type":1,"come":{"id":5}}`, "", reasonNotCome},
	{``, "", reasonNotCome},
	{`[]`, "", reasonNotCome},
}

func TestParseCome(t *testing.T) {
	for _, tc := range comeCases {
		c, reason := parseCome([]byte(tc.frame))
		if reason != tc.reason {
			t.Errorf("%.60s: reason %q, want %q", tc.frame, reason, tc.reason)
			continue
		}
		if reason == "" && c.ID != tc.id {
			t.Errorf("%.60s: id %q, want %q", tc.frame, c.ID, tc.id)
		}
	}
}

// FuzzParseCome checks the first-frame handling: never a panic, and an
// accepted come always has a usable id.
func FuzzParseCome(f *testing.F) {
	for _, tc := range comeCases {
		f.Add([]byte(tc.frame))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, reason := parseCome(data)
		if reason != "" {
			if c != nil {
				t.Fatalf("rejected (%s) but returned a come", reason)
			}
			return
		}
		if !validID(c.ID) || len(c.ID) > maxIDLen {
			t.Fatalf("accepted id %q", c.ID)
		}
		if _, err := protocol.Encode(&protocol.Msg{Type: protocol.TypeCome, Payload: c}); err != nil {
			t.Fatalf("accepted come does not encode: %v", err)
		}
	})
}
