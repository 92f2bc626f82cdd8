package hub

import (
	"strings"
	"testing"

	"github.com/agentfleet/libagent/protocol"
)

var decisionCases = []struct {
	name string
	f    comeFacts
	want verdict
}{
	// Ids with a stored secret: only a proof under auth.v1 gets in.
	{"secret, auth, valid proof", comeFacts{Auth: true, HasSecret: true, Proof: proofValid}, acceptProven},
	{"secret, auth, valid proof, legacy on", comeFacts{Auth: true, HasSecret: true, Proof: proofValid, AllowLegacy: true}, acceptProven},
	{"secret, auth, no proof", comeFacts{Auth: true, HasSecret: true}, rejectSecret},
	{"secret, auth, wrong proof", comeFacts{Auth: true, HasSecret: true, Proof: proofInvalid}, rejectSecret},
	{"secret, v1", comeFacts{HasSecret: true}, rejectSecret},
	{"secret, v1, legacy on", comeFacts{HasSecret: true, AllowLegacy: true}, rejectSecret},
	{"secret, v1 with the right secret", comeFacts{HasSecret: true, Proof: proofValid, AllowLegacy: true}, rejectSecret},
	{"secret, v1 with a wrong secret", comeFacts{HasSecret: true, Proof: proofInvalid, AllowLegacy: true}, rejectSecret},
	{"secret, server-named (cannot happen) without proof", comeFacts{Auth: true, ServerNamed: true, HasSecret: true}, rejectSecret},
	{"secret, server-named v1 (cannot happen)", comeFacts{ServerNamed: true, HasSecret: true, AllowLegacy: true}, rejectSecret},
	// Ids without a secret.
	{"new, auth", comeFacts{Auth: true}, acceptIssue},
	{"new, auth, stale secret", comeFacts{Auth: true, Proof: proofInvalid}, acceptIssue},
	{"new, auth, legacy on", comeFacts{Auth: true, AllowLegacy: true}, acceptIssue},
	{"server-named, auth", comeFacts{Auth: true, ServerNamed: true}, acceptIssue},
	{"new, v1, legacy off", comeFacts{}, rejectLegacy},
	{"new, v1 with a secret, legacy off", comeFacts{Proof: proofInvalid}, rejectLegacy},
	{"new, v1, legacy on", comeFacts{AllowLegacy: true}, acceptLegacy},
	{"server-named, v1, legacy off", comeFacts{ServerNamed: true}, rejectLegacy},
	{"server-named, v1, legacy on", comeFacts{ServerNamed: true, AllowLegacy: true}, acceptLegacy},
}

func TestDecideCome(t *testing.T) {
	for _, tc := range decisionCases {
		if got := decideCome(tc.f); got != tc.want {
			t.Errorf("%s: %+v → %v, want %v", tc.name, tc.f, got, tc.want)
		}
		checkDecision(t, tc.f)
	}
}

// TestComeFactsOf: the proof is valid only against a stored hash, and
// auth.v1 counts only when negotiated.
func TestComeFactsOf(t *testing.T) {
	stored := hashSecret("s3cret")
	all := makeCapSet([]string{protocol.CapAuth, protocol.CapAck})
	tests := []struct {
		caps   capSet
		stored []byte
		secret string
		want   comeFacts
	}{
		{all, stored, "s3cret", comeFacts{Auth: true, HasSecret: true, Proof: proofValid}},
		{all, stored, "s3cre", comeFacts{Auth: true, HasSecret: true, Proof: proofInvalid}},
		{all, stored, "", comeFacts{Auth: true, HasSecret: true, Proof: proofNone}},
		{all, nil, "s3cret", comeFacts{Auth: true, Proof: proofInvalid}},
		{makeCapSet([]string{protocol.CapAck}), stored, "s3cret", comeFacts{HasSecret: true, Proof: proofValid}},
		{0, []byte{}, "", comeFacts{HasSecret: true}}, // an empty stored hash is still a secret: nothing proves it
	}
	for i, tt := range tests {
		if got := comeFactsOf(tt.caps, false, tt.stored, tt.secret, false); got != tt.want {
			t.Errorf("%d: %+v, want %+v", i, got, tt.want)
		}
	}
}

// checkDecision asserts the invariants of decideCome for f.
func checkDecision(t *testing.T, f comeFacts) {
	t.Helper()
	v := decideCome(f)
	switch {
	case f.HasSecret && v.accepted() && !(f.Auth && f.Proof == proofValid):
		t.Fatalf("%+v → %v: an id with a secret served without proof", f, v)
	case v.accepted() && !f.Auth && !(f.AllowLegacy && !f.HasSecret):
		t.Fatalf("%+v → %v: a v1 session served outside the legacy rule", f, v)
	case !f.AllowLegacy && v.accepted() && !f.Auth:
		t.Fatalf("%+v → %v: a v1 session served with legacy agents off", f, v)
	case v == acceptIssue && (f.HasSecret || !f.Auth):
		t.Fatalf("%+v → %v: a secret issued over an existing one or outside auth.v1", f, v)
	case v == acceptProven && !(f.HasSecret && f.Auth && f.Proof == proofValid):
		t.Fatalf("%+v → %v: takeover without proof", f, v)
	case v == acceptLegacy && (f.Auth || f.HasSecret || !f.AllowLegacy):
		t.Fatalf("%+v → %v", f, v)
	}
	g := f
	g.ServerNamed = !g.ServerNamed
	if w := decideCome(g); w != v {
		t.Fatalf("%+v → %v, but %v with ServerNamed %v: the fast path changes the verdict", f, v, w, g.ServerNamed)
	}
}

// FuzzComeDecision drives the decision from raw handshake inputs: the caps
// the come claims, the caps the server offers, the secret of the agent
// that owns the id (empty: none stored), the secret the come sends, the
// legacy flag and whether the hub named the id. Whatever they are, an id
// with a stored secret is never served without that secret under auth.v1,
// and a v1 session is served only under the legacy rule.
func FuzzComeDecision(f *testing.F) {
	f.Add("auth.v1,ack.v1", true, "owner-secret", "owner-secret", false, false)
	f.Add("ack.v1,stream.v1", true, "owner-secret", "", true, false)
	f.Add("", true, "owner-secret", "owner-secret", true, false)
	f.Add("auth.v1", true, "", "whatever", false, true)
	f.Add("auth.v1", false, "", "", true, false)
	f.Add("AUTH.V1,auth.v2", true, "x", "x", true, false)
	for _, tc := range decisionCases {
		caps := ""
		if tc.f.Auth {
			caps = protocol.CapAuth
		}
		owner := ""
		if tc.f.HasSecret {
			owner = "owner"
		}
		given := map[proof]string{proofNone: "", proofInvalid: "wrong", proofValid: owner}[tc.f.Proof]
		f.Add(caps, true, owner, given, tc.f.AllowLegacy, tc.f.ServerNamed)
	}
	f.Fuzz(func(t *testing.T, claimed string, offerAuth bool, owner, given string, legacy, serverNamed bool) {
		server := []string{protocol.CapAck, protocol.CapStream}
		if offerAuth {
			server = append(server, protocol.CapAuth)
		}
		caps := makeCapSet(strings.Split(claimed, ",")) & makeCapSet(server)
		var stored []byte
		if owner != "" {
			stored = hashSecret(owner)
		}
		facts := comeFactsOf(caps, serverNamed, stored, given, legacy)
		checkDecision(t, facts)
		v := decideCome(facts)
		auth := offerAuth && protocol.HasCap(strings.Split(claimed, ","), protocol.CapAuth)
		if stored != nil && v.accepted() && (!auth || given != owner) {
			t.Fatalf("claimed %q, owner %q, given %q, legacy %v → %v: impersonation", claimed, owner, given, legacy, v)
		}
		if v.accepted() && !auth && (!legacy || stored != nil) {
			t.Fatalf("claimed %q, legacy %v, stored %v → %v: v1 session outside the legacy rule", claimed, legacy, stored != nil, v)
		}
	})
}
