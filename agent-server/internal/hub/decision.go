package hub

import (
	"crypto/subtle"

	"github.com/agentfleet/libagent/protocol"
)

// comeFacts are everything the accept/reject decision on a come depends on.
// The handshake gathers them (store reads, secret comparison) and
// decideCome, which does no I/O, turns them into a verdict.
type comeFacts struct {
	// Auth: auth.v1 is active on the session (the server offers it and the
	// come claims it). Without it the session is a v1 (legacy) session.
	Auth bool
	// ServerNamed: the id was drawn by the hub for this handshake (come.id
	// was empty), so the store was not read: nobody can know the id yet.
	ServerNamed bool
	// HasSecret: a secret hash is stored for the id.
	HasSecret bool
	// Proof is what come.secret shows against the stored hash.
	Proof proof
	// AllowLegacy is Options.AllowLegacy (allow_legacy_agents).
	AllowLegacy bool
}

// proof is come.secret compared with the stored hash.
type proof uint8

const (
	proofNone    proof = iota // come.secret is empty
	proofInvalid              // given, but no stored hash matches it (or none is stored)
	proofValid                // matches the stored hash
)

// verdict is the outcome of decideCome.
type verdict uint8

const (
	// acceptIssue: an auth.v1 session for an id without a secret; it is
	// issued one (first connection, or after an operator reset).
	acceptIssue verdict = iota
	// acceptProven: the session proved the id's secret; it replaces a
	// live session of the same id.
	acceptProven
	// acceptLegacy: a v1 session for an id without a secret, with
	// AllowLegacy; no secret is issued.
	acceptLegacy
	// rejectSecret: the id has a secret the session did not prove
	// (protocol.MsgBadSecret).
	rejectSecret
	// rejectLegacy: a v1 session while AllowLegacy is off
	// (msgLegacyRefused).
	rejectLegacy
)

func (v verdict) accepted() bool { return v <= acceptLegacy }

func (v verdict) String() string {
	switch v {
	case acceptIssue:
		return "accept-issue"
	case acceptProven:
		return "accept-proven"
	case acceptLegacy:
		return "accept-legacy"
	case rejectSecret:
		return "reject-secret"
	case rejectLegacy:
		return "reject-legacy"
	}
	return "verdict(?)"
}

// decideCome is the accept/reject rule of the handshake:
//
//   - An id with a stored secret is served only to an auth.v1 session that
//     proves it, whatever else the come claims, and whether or not the
//     id looks server-named or legacy agents are allowed. (A secret sent
//     without auth.v1 is not a proof: the field belongs to an extension the
//     session did not negotiate.)
//   - An auth.v1 session for an id without a secret is issued one.
//   - A v1 session (no auth.v1) is served only with AllowLegacy, and only
//     for an id without a secret.
//
// ServerNamed never grants anything: it only tells the caller that it did
// not need to read the store, and a caller that sets it passes HasSecret
// false because no secret can exist for an id nobody knew.
func decideCome(f comeFacts) verdict {
	if f.HasSecret {
		if f.Auth && f.Proof == proofValid {
			return acceptProven
		}
		return rejectSecret
	}
	if f.Auth {
		return acceptIssue
	}
	if f.AllowLegacy {
		return acceptLegacy
	}
	return rejectLegacy
}

// comeFactsOf gathers the facts from what the handshake knows: the
// negotiated caps, whether the hub named the id, the stored hash (nil:
// none, or not read), come.secret and the legacy flag.
func comeFactsOf(caps capSet, serverNamed bool, stored []byte, secret string, allowLegacy bool) comeFacts {
	f := comeFacts{Auth: caps.has(protocol.CapAuth), ServerNamed: serverNamed, HasSecret: stored != nil, AllowLegacy: allowLegacy}
	switch {
	case secret == "":
		f.Proof = proofNone
	case stored != nil && subtle.ConstantTimeCompare(hashSecret(secret), stored) == 1:
		f.Proof = proofValid
	default:
		f.Proof = proofInvalid
	}
	return f
}
