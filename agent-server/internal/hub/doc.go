// Package hub holds the WebSocket sessions of the agents (/ws/agent): the
// upgrade with token check and admission control, the come/handshake
// exchange (id assignment, per-agent secrets, session takeover), keepalive
// and dead-peer eviction, one bounded send queue per connection, and
// request/response correlation by tid ([Hub.Call], [Hub.Stream]).
//
// # Concurrency and memory
//
// A connection has exactly one reader goroutine, started fresh after the
// upgrade (the HTTP handler returns right away, so the deep handler stack is
// not kept), and at most one writer goroutine, which exists only while the
// connection's send queue holds frames: an idle connection costs its reader
// goroutine, the gorilla connection with a small read buffer, and a compact
// [Session]. Write buffers come from a shared pool. The only timer of an idle
// connection is its read deadline, refreshed by every frame received
// (messages, pings, pongs); a peer silent for Options.DeadAfter is closed.
//
// # Send policy
//
// Request traffic ([Hub.Call], [Hub.Stream], [Session.Send]) waits for room
// in the queue up to the caller's context and Options.WriteTimeout; if the
// queue is still full the agent is disconnected as too slow. The queue is
// bounded both in messages (Options.SendQueue) and in encoded bytes
// (Options.SendQueueBytes), so a few large frames cannot pin much memory
// either; an empty queue takes one frame of any size. The bytes queued are
// agentserver_hub_send_queue_bytes, the refusals by bound
// agentserver_hub_send_queue_full_total{limit}. Acks (ack.v1)
// are never queued: the latest cumulative value is kept on the session and
// written by the writer, so they cannot be lost to a full queue, only merged.
// A write that does not finish within Options.WriteTimeout closes the
// connection. Every drop and disconnect is counted by reason
// (agentserver_hub_disconnects_total, agentserver_hub_dropped_messages_total).
//
// # Replies
//
// Replies are matched to waiters by tid in the read loop without blocking it:
// a [Call] waiter has room for its one reply; a [Stream] waiter has a bounded
// buffer (Options.StreamBuffer) and is failed with [ErrStreamOverflow] when
// its consumer falls that far behind. Every pending request of an agent fails
// with [ErrAgentGone] when its connection ends. Messages without tid, or whose
// tid has no waiter, go to the handler registered for their type
// ([Hub.Handle]); journaled messages (ack.v1) without a waiter go to the
// journal handler ([Hub.HandleJournal]).
package hub
