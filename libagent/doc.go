// Package libagent is the runtime every agent embeds: it owns the
// connection to agent-server and the service lifecycle, so that an agent is
// only its config struct and its message handlers.
//
// # Writing an agent
//
// An agent's config struct has a [Basic] field tagged kv:"basic" (the
// basic.* keys every agent has); [Agent.Setup] registers handlers by message
// type with [Runtime.Handle]; main is one call to [Main]. See the example.
//
// A handler receives the request and a [Replier]. Returning an error sends
// type 0 with the error text for the request's tid; a panic is recovered,
// logged with its stack and answered the same way. Handlers run on a
// bounded worker pool (Options.Workers); when all workers are busy a
// request is answered "agent busy" at once, so the reader never stalls and
// keepalive keeps working. A handler's context is cancelled when the task
// is killed ([Runtime.Cancel]), its timeout ([WithTimeout]) expires or the
// agent shuts down — not when the connection drops: results sent with
// [Replier.ReplyReliable] survive a reconnect. Two options change that:
// [ConnScoped] ends the handler's context with the connection its request
// came on (an interactive session, whose peer is gone with it), and
// [Inline] runs a handler on the reader itself, in arrival order, for the
// messages that feed a running task (keystrokes); it must never block.
//
// # Start-up order
//
// [Run] (and "agent run") starts in this order, each step using the
// previous ones:
//
//  1. load the config file (kvconf, strict; basic.* defaults of config.md;
//     $NAME, $HOSTNAME and $IP in basic.id and basic.server);
//  2. logging (jkframe/logging: basic.log.target, dir, size, rotate, level);
//  3. resource limits (package limit: basic.limit.*; a failure is logged
//     and the agent runs unlimited);
//  4. self-monitor (package selfstat; its CPU baseline starts here);
//  5. state file and journal, host facts, Agent.Setup;
//  6. connect and handshake (come with host facts and capabilities);
//  7. one reader (inline) and one writer goroutine per connection;
//  8. keepalive: a ping every 10 s; a link silent for three intervals is
//     dead and re-dialled.
//
// # Connection
//
// basic.server is host:port (ws), ws://host:port or wss://host:port; the
// path is /ws/agent. A basic.token is sent as "Authorization: Bearer"; a
// 401/403 answer is logged and retried with backoff like any failure. The
// agent reconnects forever with exponential backoff and full jitter (1 s to
// 60 s), reset only after a connection stayed up 30 s (jkframe/backoff). A
// handshake with a redirect list makes the agent try those servers in
// order, then basic.server again.
//
// The id the server assigns and the per-agent secret it issues are kept in
// a state file next to the config (conf/agent.state for conf/agent.conf);
// the operator's config is never rewritten. A configured basic.id wins over
// the state file.
//
// # Send queues
//
// Each connection has a bounded send queue (Options.Queue). Replies and
// pushes block their producer while it is full (until its ctx is done);
// type-7 self-reports use a one-slot queue where a newer report replaces
// an unsent older one (counted). Frames larger than Options.MaxFrame close
// the connection, which is re-dialled; malformed frames are logged and
// dropped, a malformed request with a tid answered with a type-0 error.
//
// # Extensions
//
// The agent announces protocol.CapAuth, protocol.CapAck (when it has a
// journal) and Agent.Caps; an extension is used only when the server
// announces it too, so a v1 server gets plain v1. With CapAck,
// [Replier.ReplyReliable] appends the message to an on-disk journal
// (package journal, next to the state file, bounded: the producer blocks
// while it is full), sends it with a seq, and replays every unacked message
// in order after a reconnect. [Runtime.Fetch] and [Runtime.Put] are the
// one-shot HTTP(S) transfers of file bodies (X-Token header; https when the
// control channel is wss, with the basic.tls settings).
//
// # Built-in handlers
//
// Every agent answers log_ls_req (10000) with its log files and
// log_download_req (10002) with a zip of the requested ones (log_dinfo,
// then log_ddata blocks of 32 KiB); only names from the listing are
// accepted. Every basic.monitor.interval (at least 5 s) it pushes the
// type-7 self-report; [Agent.Report] adds agent-defined fields.
package libagent
