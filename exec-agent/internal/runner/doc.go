// Package runner runs the exec-agent's commands: one OS process tree per
// task, its output streamed in order, its end reported exactly once after the
// last chunk, and the whole tree killed on timeout, kill or cancellation.
package runner
