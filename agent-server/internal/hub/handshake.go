package hub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"
)

// maxIDLen bounds come.id; longer ids are refused.
const maxIDLen = 128

// msgBadID is Handshake.Msg for an unusable come.id.
const msgBadID = "invalid agent id"

// msgLegacyRefused is Handshake.Msg for a v1 session (no auth.v1) while
// Options.AllowLegacy is off.
const msgLegacyRefused = "agent must use auth.v1: this server does not accept v1 agents (allow_legacy_agents is off)"

// handshake reads come and answers it. It returns "" when the session is
// registered (the handshake frame is queued first), else the rejection
// reason (the connection is then closed by the caller).
func (s *Session) handshake() string {
	h := s.hub
	c := s.conn
	c.SetReadLimit(h.opts.MaxFrame)
	_ = c.SetReadDeadline(realNow().Add(h.opts.ComeTimeout))
	_, data, err := c.ReadMessage()
	if err != nil {
		return s.readErrReason(err, reasonComeTimeout)
	}
	come, reason := parseCome(data)
	if reason != "" {
		if reason == reasonBadID {
			s.reject("", msgBadID)
		}
		return reason
	}
	s.come = come
	s.caps = makeCapSet(come.Caps) & makeCapSet(h.caps)
	id := come.ID
	// An id the server has just drawn from a cryptographic source is known
	// to nobody: there is no secret or journal ack to look up for it.
	fresh := id == ""
	if fresh {
		id = h.newAgentID()
	}
	s.id = id
	if h.opts.Redirect != nil {
		if to := h.opts.Redirect(come.ID); len(to) > 0 {
			s.redirect(id, to)
			return reasonRedirected
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), h.opts.WriteTimeout)
	defer cancel()
	hs := &protocol.Handshake{OK: true, ID: id, Caps: h.caps}
	auth := s.caps.has(protocol.CapAuth)
	// The stored secret is read whenever the verdict can depend on it: for
	// every id the agent names, whatever caps it claims. (A v1 session
	// while legacy agents are refused is refused either way.)
	var stored []byte
	if !fresh && h.opts.Secrets != nil && (auth || h.opts.AllowLegacy) {
		var err error
		if stored, err = h.opts.Secrets.SecretHash(ctx, id); err != nil {
			h.log.Error("hub: read agent secret", "agent", id, "err", err)
			s.reject(id, "server error")
			return reasonStore
		}
	}
	f := comeFactsOf(s.caps, fresh, stored, come.Secret, h.opts.AllowLegacy)
	var issued []byte // hash of a newly issued secret, stored once registered
	v := decideCome(f)
	switch v {
	case rejectSecret:
		s.reject(id, protocol.MsgBadSecret)
		return reasonBadSecret
	case rejectLegacy:
		s.reject(id, msgLegacyRefused)
		return reasonLegacy
	case acceptIssue:
		hs.Secret = newSecret()
		issued = hashSecret(hs.Secret)
	}
	proven := v == acceptProven
	if s.caps.has(protocol.CapAck) && come.Journal != "" {
		var hwm uint64
		var err error
		if !fresh {
			hwm, err = h.opts.Acks.JournalAck(ctx, id, come.Journal)
		}
		if err != nil {
			h.log.Error("hub: read journal ack", "agent", id, "err", err)
			s.reject(id, "server error")
			return reasonStore
		}
		s.jr = &journal{id: come.Journal, hwm: hwm, persisted: hwm}
		hs.Ack = hwm
	}
	frame, err := protocol.Encode(&protocol.Msg{Type: protocol.TypeHandshake, Payload: hs})
	if err != nil {
		return reasonMalformed // cannot happen: the handshake is ours
	}
	// The handshake must be the first frame out. Claim the writer so that a
	// request queued as soon as the session is visible waits behind it.
	// (s is not visible yet: nobody else holds s.mu.)
	s.pushLocked(frame)
	s.writing = true
	s.connectedAt = h.opts.Clock.Now().UnixNano()
	s.lastSeen.Store(realNow().UnixNano())

	for attempt := 0; ; attempt++ {
		h.mu.Lock()
		if h.closing {
			h.mu.Unlock()
			return reasonShutdown
		}
		old := h.sessions[id]
		if old == nil {
			h.sessions[id] = s
			delete(h.pending, s)
			h.mu.Unlock()
			break
		}
		h.mu.Unlock()
		if !proven || attempt >= 3 {
			s.reject(id, protocol.MsgIDConflict)
			return reasonConflict
		}
		// The secret is proven: the live session is taken to be stale.
		old.closeWith(reasonReplaced)
		old.waitDone(h.opts.WriteTimeout)
	}
	unregister := func(why, reason string) string {
		h.mu.Lock()
		if h.sessions[id] == s {
			delete(h.sessions, id)
		}
		h.mu.Unlock()
		s.dropQueueLocked()
		s.reject(id, why)
		return reason
	}
	if h.opts.Claim != nil {
		tok, err := h.opts.Claim(ctx, s, proven)
		switch {
		case errors.Is(err, ErrHeldElsewhere):
			h.log.Info("hub: agent id held by another server", "agent", id, "err", err)
			return unregister(protocol.MsgIDConflict, reasonConflict)
		case err != nil:
			h.log.Error("hub: record the agent's session", "agent", id, "err", err)
			return unregister("server error", reasonStore)
		}
		s.claimToken.Store(tok)
	}
	if issued != nil {
		if err := h.opts.Secrets.SetSecretHash(ctx, id, issued); err != nil {
			h.log.Error("hub: store agent secret", "agent", id, "err", err)
			return unregister("server error", reasonStore)
		}
	}
	return "" // start releases the writer after OnConnect
}

// parseCome decodes the first frame; it must be a valid come.
func parseCome(data []byte) (*protocol.Come, string) {
	msg, err := protocol.Decode(data)
	if err != nil {
		return nil, reasonNotCome
	}
	if msg.Type != protocol.TypeCome {
		return nil, reasonNotCome
	}
	if !validID(msg.Come().ID) {
		return nil, reasonBadID
	}
	return msg.Come(), ""
}

// validID accepts ids of printable characters without spaces, at most
// maxIDLen bytes ("" means: assign one).
func validID(id string) bool {
	if len(id) > maxIDLen {
		return false
	}
	for _, r := range id {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// reject answers come with ok:false and closes with a policy-violation
// frame. Best effort: the peer may already be gone.
func (s *Session) reject(id, why string) {
	frame, err := protocol.Encode(&protocol.Msg{Type: protocol.TypeHandshake,
		Payload: &protocol.Handshake{OK: false, ID: id, Msg: why}})
	if err != nil {
		return
	}
	deadline := realNow().Add(s.hub.opts.WriteTimeout)
	_ = s.conn.SetWriteDeadline(deadline)
	if s.conn.WriteMessage(websocket.TextMessage, frame) == nil {
		_ = s.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.ClosePolicyViolation, why), deadline)
	}
}

// redirect answers come with ok:false and the servers the agent should
// use instead, and closes with going-away (1001): nothing is wrong with
// the agent.
func (s *Session) redirect(id string, to []string) {
	frame, err := protocol.Encode(&protocol.Msg{Type: protocol.TypeHandshake,
		Payload: &protocol.Handshake{OK: false, ID: id, Msg: MsgRedirect, Redirect: to}})
	if err != nil {
		return
	}
	deadline := realNow().Add(s.hub.opts.WriteTimeout)
	_ = s.conn.SetWriteDeadline(deadline)
	if s.conn.WriteMessage(websocket.TextMessage, frame) == nil {
		_ = s.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, MsgRedirect), deadline)
	}
}

// MsgRedirect is the handshake's msg when it carries a redirect list.
const MsgRedirect = "redirect"

// newAgentID returns agent-YYYYMMDD-<16 hex> from a cryptographic source.
func (h *Hub) newAgentID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return "agent-" + h.opts.Clock.Now().Format("20060102") + "-" + hex.EncodeToString(b[:])
}

// newTID returns YYYYMMDD-NNNNN-<16 hex>, the v1 form.
func (h *Hub) newTID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := h.tidSeq.Add(1) % 100000
	return fmt.Sprintf("%s-%05d-%s", h.opts.Clock.Now().Format("20060102"), n, hex.EncodeToString(b[:]))
}

// newSecret returns 32 random bytes, base64url without padding.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
