package hub

import (
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

// An id that has a stored secret is served only to a session that proves
// it, whatever capabilities the come claims and whether or not legacy
// agents are allowed (issue #13, item 1).
func TestImpostorCannotTakeSecretID(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		th := newTestHub(t, func(o *Options) { o.AllowLegacy = legacy })
		var mu sync.Mutex
		var connected []string
		th.opts.OnConnect = func(s *Session) { mu.Lock(); connected = append(connected, s.Info().Version); mu.Unlock() }

		real := connect(t, th, come("web-1", protocol.CapAuth, protocol.CapAck), nil)
		secret := real.hs.Secret
		if !real.hs.OK || secret == "" {
			t.Fatalf("legacy=%v: real agent handshake %+v", legacy, real.hs)
		}
		real.c.Close()
		eventually.Within(t, 30*time.Second, "real agent offline", func() bool { return th.Count() == 0 })

		cases := []struct {
			name   string
			caps   []string
			secret string
		}{
			{"no caps", nil, ""},
			{"empty caps", []string{}, ""},
			{"ack and stream", []string{protocol.CapAck, protocol.CapStream}, ""},
			{"unknown cap", []string{"auth.v2"}, ""},
			{"wrong secret without auth.v1", []string{protocol.CapAck}, "guess"},
			// The right secret outside auth.v1 is not a proof: the field
			// belongs to the extension the session did not negotiate.
			{"right secret without auth.v1", []string{protocol.CapStream}, secret},
			{"auth.v1 without secret", []string{protocol.CapAuth}, ""},
			{"auth.v1 wrong secret", []string{protocol.CapAuth, protocol.CapAck}, "guess"},
		}
		for _, tc := range cases {
			c := come("web-1", tc.caps...)
			c.Version, c.Secret = "6.6.6", tc.secret
			a := connect(t, th, c, nil)
			if a.hs.OK {
				t.Errorf("legacy=%v, %s: impostor accepted: %+v", legacy, tc.name, a.hs)
				continue
			}
			want := protocol.MsgBadSecret
			if !legacy && !protocol.HasCap(tc.caps, protocol.CapAuth) {
				want = msgLegacyRefused // refused before the secret matters
			}
			if a.hs.Msg != want {
				t.Errorf("legacy=%v, %s: msg %q, want %q", legacy, tc.name, a.hs.Msg, want)
			}
			if _, err := a.tryRecv(2 * time.Second); err == nil {
				t.Errorf("legacy=%v, %s: connection not closed", legacy, tc.name)
			}
			if s, ok := th.Session("web-1"); ok {
				t.Errorf("legacy=%v, %s: a session for web-1 exists (version %s)", legacy, tc.name, s.Info().Version)
				s.Close()
				eventually.Within(t, 30*time.Second, "impostor gone", func() bool { return th.Count() == 0 })
			}
		}
		mu.Lock()
		if len(connected) != 1 || connected[0] != "1.0.0" {
			t.Errorf("legacy=%v: OnConnect saw versions %v, want only the real agent's", legacy, connected)
		}
		mu.Unlock()

		// The real agent still gets in with its secret.
		c := come("web-1", protocol.CapAuth, protocol.CapAck)
		c.Secret = secret
		if back := connect(t, th, c, nil); !back.hs.OK {
			t.Errorf("legacy=%v: real agent refused after the impostors: %+v", legacy, back.hs)
		}
	}
}

// A session without auth.v1 is a v1 (legacy) session: admitted only with
// AllowLegacy, for an id the agent names or one the server assigns.
func TestLegacySessionNeedsAllowLegacy(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		th := newTestHub(t, func(o *Options) { o.AllowLegacy = legacy })
		for _, id := range []string{"old-1", ""} {
			for _, caps := range [][]string{nil, {protocol.CapAck, protocol.CapStream}} {
				a := connect(t, th, come(id, caps...), nil)
				if a.hs.OK != legacy {
					t.Errorf("legacy=%v id=%q caps=%v: handshake %+v", legacy, id, caps, a.hs)
				}
				if a.hs.Secret != "" {
					t.Errorf("legacy=%v id=%q caps=%v: a v1 session got a secret", legacy, id, caps)
				}
				if !legacy && a.hs.Msg != msgLegacyRefused {
					t.Errorf("legacy=%v id=%q caps=%v: msg %q, want %q", legacy, id, caps, a.hs.Msg, msgLegacyRefused)
				}
				a.c.Close()
				eventually.Within(t, 30*time.Second, "session end", func() bool { return th.Count() == 0 })
			}
		}
		// auth.v1 sessions never depend on the flag.
		if a := connect(t, th, come("new-1", protocol.CapAuth), nil); !a.hs.OK || a.hs.Secret == "" {
			t.Errorf("legacy=%v: auth.v1 agent: %+v", legacy, a.hs)
		}
	}
}

// A live id without a secret cannot be taken over: neither by another v1
// session nor by an auth.v1 one (which would be issued a secret).
func TestLiveLegacyIDConflict(t *testing.T) {
	th := newTestHub(t, func(o *Options) { o.AllowLegacy = true })
	first := connect(t, th, come("old-1"), nil)
	if !first.hs.OK {
		t.Fatalf("first: %+v", first.hs)
	}
	for _, caps := range [][]string{nil, {protocol.CapAuth}} {
		a := connect(t, th, come("old-1", caps...), nil)
		if a.hs.OK || a.hs.Msg != protocol.MsgIDConflict {
			t.Errorf("caps %v: handshake %+v, want %q", caps, a.hs, protocol.MsgIDConflict)
		}
	}
	if _, ok := th.Session("old-1"); !ok {
		t.Error("the first session is gone")
	}
}
