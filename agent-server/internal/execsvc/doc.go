// Package execsvc drives exec-agents through the hub: remote commands
// ([Service.Run]), directory listings ([Service.Ls]), file uploads
// ([Service.Upload]) and downloads ([Service.Download]), with the one-shot
// transfer URLs that move file bytes off the control channel
// ([Service.ServeTransfer]). The HTTP routes (internal/api) and fleet tasks
// build on it.
//
// # Exec tasks
//
// Every run is recorded in the store: a task (kind exec or script, unless
// the caller runs under an existing task, as fleet tasks do) and the
// agent's result (pid, begin, end, exit code, state ok / failed /
// timed_out / lost). The exec's tid on the wire is the task id, so results
// replayed by an agent (ack.v1) find their task again even after a server
// restart.
//
// Output is kept three ways:
//   - the full stream in the store (store.AppendOutputAt, bounded by the
//     store's output cap), written in batches of up to 64 KiB or 100 ms,
//     each at its offset, so a batch retried after a write whose answer was
//     lost is not stored twice;
//   - the first Options.HeadSize bytes (Result.OutputHead) and the last
//     Options.TailSize bytes (Result.OutputTail) in memory and in the
//     result, so both ends survive whatever the cap;
//   - Result.Dropped counts the bytes in neither the stored stream nor the
//     tail; Result.OutputBytes is the total the agent produced. When
//     Dropped is 0 and OutputBytes exceeds the stored size, the tail
//     overlaps the stored stream's end.
//
// [Exec.ReadOutput] reads any offset of that output (store, unflushed
// memory, tail) and [Exec.Changed] wakes live readers, so any number of
// subscribers (pty polling, SSE) follow a task without a queue per reader.
//
// # Agent drops and replays
//
// When the connection of an agent with ack.v1 drops mid-run, the result is
// stored as lost ("waiting for the agent's journaled result") and the exec
// stays open: the agent replays its journal after reconnecting, the hub
// hands the messages to the journal handler registered here, and they
// complete the task (the hub drops duplicates). Replays for a task no
// longer in memory (server restart, or after Options.Grace past the
// timeout) are adopted from the stored result. Without ack.v1 the result
// becomes lost for good, and an own task fails.
//
// # Legacy agents' late output
//
// An agent with neither stream.v1 nor ack.v1 (jkstack 1.5) may send output
// after its exec_done. Its exec_done is held, and the result made final,
// once no output came for Options.LateData (at most Options.LateDataMax
// after exec_done): Done, the synchronous reply and pty readers see every
// byte. Output later still is appended to the stored output and counted
// (agentserver_exec_late_output_bytes_total). Replies that come beside the
// stream while its reader still works through its queue are handed to the
// reader, so output keeps its order.
//
// Exit code -1 (legacy agents' "killed") is stored as 137 with the message
// "killed". A code of 137 at or after the timeout is timed_out.
//
// # Concurrency
//
// A Service and an Exec are safe for concurrent use. Each running exec has
// a reader goroutine (its reply stream) and a writer goroutine (deadlines,
// late data, output batching), both owned by the Service and ended by Close.
// The store writes of every exec go through one service flusher that
// group-commits them: each round takes everything pending and writes all
// results in one transaction, so batches grow with load and a lone exec
// waits for nothing. Messages fed from the hub's handlers are processed
// without blocking on the store, except a journaled exec_done, which is
// stored before the hub acks it.
//
// # Layout
//
// An Exec's collaborators (store, hub, group commit, clock, limits,
// metrics, log) are its env, shared by the execs of a Service (env.go).
// By concern: spec.go what runs, run.go starting, killing and listing,
// feed.go the agent's replies, writer.go deadlines and batching, flush.go
// the group commit, output.go reading the output, reconnect.go agents that
// come back, files.go and transfer.go file transfers.
package execsvc
