package logging

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agentfleet/libagent/logship"
)

// ForwardOptions configure the forwarding of the stored lines to NATS
// JetStream (docs/logging.md, "Forwarding to NATS JetStream").
type ForwardOptions struct {
	// URLs: comma-separated nats:// or tls:// URLs (required).
	URLs string
	// Creds: a credentials file; TokenFile: a file holding a token;
	// TLSCA: a CA bundle. Optional.
	Creds, TokenFile, TLSCA string
	// Projects: path.Match patterns of the projects forwarded (none: all).
	Projects []string
	// StreamPrefix + project token is a project's stream; SubjectPrefix.
	// project token.host token the subject of a host's lines.
	StreamPrefix, SubjectPrefix string
	// MaxAge, MaxBytes bound each stream (0: none); DuplicateWindow is
	// JetStream's memory of message ids (default 2 min).
	MaxAge          time.Duration
	MaxBytes        int64
	DuplicateWindow time.Duration
	Replicas        int
	// AckTimeout: a publish not acknowledged this long is sent again
	// (default 10 s).
	AckTimeout time.Duration
	// DropForwarded deletes the closed segments once forwarded (the
	// embedded store is then only the buffer of the forwarding).
	DropForwarded bool
	// StartNewest starts a host without a cursor at its newest line
	// instead of its oldest stored one.
	StartNewest bool
	// Window: lines in flight per host (default 1000); WindowBytes their
	// bytes (default 4 MiB).
	Window      int
	WindowBytes int
	// Poll: how often a host is looked at without a notice (default 1 s).
	Poll time.Duration
	// BackoffMin, BackoffMax bound the wait after a failure (defaults
	// 100 ms, 30 s; full jitter).
	BackoffMin, BackoffMax time.Duration
}

func (o *ForwardOptions) defaults() {
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 10 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 1000
	}
	if o.WindowBytes <= 0 {
		o.WindowBytes = 4 << 20
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "logs"
	}
}

var plainTokenRE = regexp.MustCompile(`^[A-Za-z0-9-][A-Za-z0-9_-]{0,127}$`)

// natsToken is a project name or agent id as one subject token (and a
// stream name part): itself when it is made of A-Z a-z 0-9 _ - (and does
// not start with _), else "_" and its hex, so that two names never give
// the same token.
func natsToken(s string) string {
	if plainTokenRE.MatchString(s) {
		return s
	}
	return "_" + hex.EncodeToString([]byte(s))
}

// StreamName returns the stream of a project.
func (o *ForwardOptions) StreamName(project string) string {
	return o.StreamPrefix + natsToken(project)
}

// Subject returns the subject of a host's lines of a project.
func (o *ForwardOptions) Subject(project, host string) string {
	return o.SubjectPrefix + "." + natsToken(project) + "." + natsToken(host)
}

// MsgID returns the Nats-Msg-Id of a line: the same for every send of
// the line, so that JetStream keeps one. gen tells apart a project
// removed and configured again under the same name (whose agents read
// the same sources from the same offsets again).
func MsgID(project, host, sourceID string, offset, gen int64) string {
	return natsToken(project) + "." + natsToken(host) + "." + sourceID + "." + strconv.FormatInt(offset, 10) + "." + strconv.FormatInt(gen, 36)
}

// connectNATS opens the forwarder's connection. It does not wait for a
// server: the client keeps trying (RetryOnFailedConnect) and the
// forwarder counts the rounds that fail meanwhile.
func connectNATS(o *ForwardOptions, m *fwdMetrics, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("agent-server log forwarding"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(time.Second, 2*time.Second),
		// No buffering while reconnecting: a publish fails at once and is
		// retried from the forwarder's own queue, which knows its order.
		nats.ReconnectBufSize(-1),
		nats.Timeout(5 * time.Second),
		nats.ConnectHandler(func(c *nats.Conn) {
			m.connected.Set(1)
			log.Info("connected to NATS", "server", c.ConnectedUrlRedacted())
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			m.connected.Set(1)
			log.Info("reconnected to NATS", "server", c.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			m.connected.Set(0)
			if err != nil { // nil: closed by us
				log.Warn("disconnected from NATS; log forwarding waits", "err", err)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { m.connected.Set(0) }),
	}
	if o.Creds != "" {
		if _, err := os.Stat(o.Creds); err != nil {
			return nil, fmt.Errorf("logging.nats.creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.TokenFile != "" {
		b, err := os.ReadFile(o.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("logging.nats.token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("logging.nats.token_file %s: empty", o.TokenFile)
		}
		opts = append(opts, nats.Token(tok))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	nc, err := nats.Connect(o.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", redactURLs(o.URLs), err)
	}
	return nc, nil
}

// redactURLs drops anything but scheme and host of the configured URLs
// (config check refuses user info, this is a second guard for the logs).
func redactURLs(s string) string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if i := strings.LastIndex(u, "@"); i >= 0 {
			scheme, _, _ := strings.Cut(u, "://")
			u = scheme + "://***@" + u[i+1:]
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// streamConfig is the stream of a project as the forwarder wants it.
func (o *ForwardOptions) streamConfig(project string) jetstream.StreamConfig {
	maxBytes := o.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:        o.StreamName(project),
		Description: "log lines of project " + project + " (agent-server log forwarding)",
		Subjects:    []string{o.SubjectPrefix + "." + natsToken(project) + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      o.MaxAge,
		MaxBytes:    maxBytes,
		Duplicates:  o.DuplicateWindow,
		Replicas:    o.Replicas,
	}
}

// errNotConnected: a round was not tried, NATS is not connected.
var errNotConnected = errors.New("not connected to NATS")

// failReason is the metric label of a forwarding failure.
func failReason(err error) string {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, errNotConnected), errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrConnectionReconnecting):
		return "connection"
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "timeout"
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return "no_stream"
	case errors.Is(err, errStream):
		return "stream"
	case errors.As(err, &apiErr):
		return "rejected"
	}
	return "other"
}

var errStream = errors.New("stream")

// ensureStream creates or updates a project's stream once per connection
// (a deleted stream is made again after the publishes find none).
func (f *forwarder) ensureStream(ctx context.Context, project string) error {
	f.mu.Lock()
	ok := f.streams[project]
	f.mu.Unlock()
	if ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, f.o.AckTimeout)
	defer cancel()
	if _, err := f.js.CreateOrUpdateStream(ctx, f.o.streamConfig(project)); err != nil {
		return fmt.Errorf("%w %s: %w", errStream, f.o.StreamName(project), err)
	}
	f.mu.Lock()
	f.streams[project] = true
	f.mu.Unlock()
	return nil
}

func (f *forwarder) streamLost(project string) {
	f.mu.Lock()
	delete(f.streams, project)
	f.mu.Unlock()
}

// lineMsg builds the message of one stored line.
func (f *forwarder) lineMsg(project, host, subject string, src frameSource, r *logship.Record, maxPayload int) (*nats.Msg, bool) {
	h := nats.Header{}
	h.Set("Log-Project", project)
	h.Set("Log-Host", host)
	h.Set("Log-Source", src.name)
	h.Set("Log-Source-Id", src.id)
	h.Set("Log-Offset", strconv.FormatInt(r.Offset, 10))
	h.Set("Log-Time", time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano))
	switch r.Stream {
	case 1:
		h.Set("Log-Stream", "stdout")
	case 2:
		h.Set("Log-Stream", "stderr")
	}
	if r.Flags != 0 {
		h.Set("Log-Flags", strconv.Itoa(int(r.Flags)))
	}
	data, cut := r.Data, false
	// Headers, the message id and the protocol overhead take some of the
	// server's max_payload.
	if room := maxPayload - 1024 - len(src.name); len(data) > room && room > 0 {
		h.Set("Log-Truncated", strconv.Itoa(len(data)))
		data, cut = data[:room], true
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}, cut
}
