package hub

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/libagent/protocol"
)

// Clock tells the time used for ids, tids and session timestamps. Network
// deadlines always use the real time.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// DefaultSendQueueBytes is the default of Options.SendQueueBytes: one
// frame of the default MaxFrame.
const DefaultSendQueueBytes = 16 << 20

// Options configure a Hub. The zero value of every field selects the default
// named in its comment.
type Options struct {
	Logger   *slog.Logger          // default: discard
	Registry prometheus.Registerer // metrics; default: not exported
	Clock    Clock                 // default: the system clock

	// MaxFrame is the read limit of one frame (message); a larger frame
	// closes that connection. Default protocol.MaxFrame (16 MiB).
	MaxFrame int64

	// AgentTokens are the enrollment tokens accepted in
	// "Authorization: Bearer <token>" on the upgrade request. A wrong token is
	// always refused with 401; a missing one is accepted only with
	// AllowLegacy. When AgentTokens is empty no token is checked at all.
	AgentTokens []string
	// AllowLegacy admits v1 agents: upgrades without a token, and sessions
	// that do not negotiate auth.v1 (no per-agent secret), the latter only
	// for ids that have no stored secret. Off, every session must speak
	// auth.v1: it proves its id's secret or is issued one. An id with a
	// stored secret is never served without proof, whatever this says.
	AllowLegacy bool

	// ConnectLimit is the admission rate in handshakes per second, with
	// ConnectBurst; over it the upgrade gets 429 with Retry-After. 0 (the
	// default) means unlimited. ConnectBurst defaults to max(1, ConnectLimit).
	ConnectLimit float64
	ConnectBurst int

	// ComeTimeout is how long a new connection may take to send come.
	// Default 60 s.
	ComeTimeout time.Duration
	// DeadAfter is the silence (no frame of any kind) after which a peer is
	// evicted. Default 30 s (3 agent ping intervals of 10 s).
	DeadAfter time.Duration
	// WriteTimeout is the deadline of every write, and how long a request
	// waits for room in a full send queue before the agent is disconnected.
	// Default 10 s.
	WriteTimeout time.Duration
	// SendQueue is the bound of a connection's send queue, in messages.
	// Default 256.
	SendQueue int
	// SendQueueBytes bounds the encoded bytes in a connection's send queue,
	// beside SendQueue: a full queue by either bound is handled the same
	// way. A frame larger than the bound is still taken into an empty
	// queue. Default DefaultSendQueueBytes.
	SendQueueBytes int64
	// StreamBuffer is how many replies a Stream buffers for its consumer;
	// beyond that the stream fails with ErrStreamOverflow. Default 256.
	StreamBuffer int

	// Secrets holds per-agent secret hashes (auth.v1). Nil: auth.v1 is not
	// offered, so every session is a v1 session (admitted only with
	// AllowLegacy).
	Secrets SecretStore
	// Acks holds the journal high-water marks (ack.v1). Nil: ack.v1 is not
	// offered.
	Acks AckStore
	// ExtraCaps are capabilities implemented above the hub (bulk.v1,
	// stream.v1 by the feature layers), announced in every handshake in
	// addition to auth.v1 (when Secrets is set) and ack.v1 (when Acks is
	// set), which the hub implements itself.
	ExtraCaps []string

	// AckDelay bounds how long a stored journaled message waits for its
	// ack; an exec_done within 20 ms, AckBatch messages at once. Default 1 s.
	AckDelay time.Duration
	// AckBatch is the number of stored messages that triggers an ack.
	// Default 256.
	AckBatch int

	// ReadBufferSize and WriteBufferSize size the gorilla buffers. Defaults
	// 512 and 4096; write buffers are pooled and held only while writing.
	ReadBufferSize  int
	WriteBufferSize int

	// OnConnect runs once the session is registered, before the handshake
	// reply is sent and before any message of the session is dispatched.
	// OnDisconnect runs once when a registered session ends, after its
	// pending requests failed. Both run on the connection's goroutine and
	// must not block for long.
	OnConnect func(*Session)
	// Claim, when set, records the session where the other servers of a
	// cluster see it, during the handshake: after the session is registered
	// here (a live session of the same id here was replaced or refused by
	// the rules above) and before OnConnect. proven says the agent proved
	// its id's secret (it may replace a live session elsewhere). The token
	// it returns is kept with the session (Session.ClaimToken). An error
	// wrapping ErrHeldElsewhere refuses the agent with "agent id conflict";
	// any other refuses it with "server error".
	Claim        func(ctx context.Context, s *Session, proven bool) (int64, error)
	OnDisconnect func(s *Session, reason string)
	// Admit, when set, is asked before every upgrade: an error refuses it
	// with 503, Retry-After and the error's text, as during a shutdown (a
	// cluster member whose lease has ended, for instance).
	Admit func() error
	// Redirect, when set, is asked once an agent's come is read (its id
	// known, "" for an agent that asks for one): a non-empty list answers
	// the handshake with ok:false, msg "redirect" and that redirect list
	// (servers as in basic.server) and closes the connection with 1001,
	// before anything is looked up or registered. A cluster member over its
	// share, or draining, sends agents to other members this way.
	Redirect func(agent string) []string
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = protocol.MaxFrame
	}
	if o.ConnectBurst <= 0 {
		o.ConnectBurst = max(1, int(o.ConnectLimit))
	}
	if o.ComeTimeout <= 0 {
		o.ComeTimeout = 60 * time.Second
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.SendQueue <= 0 {
		o.SendQueue = 256
	}
	if o.SendQueueBytes <= 0 {
		o.SendQueueBytes = DefaultSendQueueBytes
	}
	if o.StreamBuffer <= 0 {
		o.StreamBuffer = 256
	}
	if o.AckDelay <= 0 {
		o.AckDelay = time.Second
	}
	if o.AckBatch <= 0 {
		o.AckBatch = 256
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 512
	}
	if o.WriteBufferSize <= 0 {
		o.WriteBufferSize = 4096
	}
}
