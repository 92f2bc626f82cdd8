// Package protocol defines the agent ⇄ server wire protocol: the message
// envelope [Msg], one Go struct per payload, the [Type] numbers, and
// [Encode] / [Decode].
//
// Two layers share one envelope. The v1 core is byte-compatible with the
// jkstack agents (1.2.x) and agent-server (1.5.x) in the field; the
// extensions (types 100–199 and a few omitempty fields on v1 payloads) are
// used only with a peer that announced the matching capability in
// come.caps / handshake.caps (see the Cap constants). The full description,
// written for implementers in other languages, is docs/protocol.md at the
// repository root.
//
// Transport rules that are not the business of this package — the WebSocket
// itself, the per-frame read limit ([MaxFrame] is the default), keepalive —
// are applied by the connection owner (libagent on the agent side, the hub on
// the server side).
//
// Binary blobs in upload / download / log chunks use the $N$ text form of
// github.com/agentfleet/jkframe/compress; exec output (exec_data.data) is plain
// standard base64. Everything in this package is safe for concurrent use; a
// *Msg itself is not and belongs to whoever holds it.
package protocol
