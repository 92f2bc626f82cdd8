package protocol

import (
	"slices"
	"time"
)

// Capability names, announced in Come.Caps and Handshake.Caps. An extension
// is in use on a connection when both sides announced it; unknown names are
// ignored.
const (
	// CapAuth: enrollment token on the upgrade request, per-agent secret in
	// handshake.secret / come.secret, session takeover by a proven secret.
	CapAuth = "auth.v1"
	// CapAck: Msg.Seq on execd / exec_data / exec_done, cumulative acks
	// (type 100), replay after reconnect, come.journal / handshake.ack.
	CapAck = "ack.v1"
	// CapBulk: download_req.uri/token/offset/length (agent PUTs the bytes);
	// the server never sends download data inline to such an agent.
	CapBulk = "bulk.v1"
	// CapStream: exec.pipe, exec_kill.task_id with exec_kill_rep (103),
	// ps_req / ps_rep (101 / 102).
	CapStream = "stream.v1"
	// CapPty: interactive terminal sessions, pty_open … pty_close
	// (104–111), with credit-based flow control (see PtyOpen).
	CapPty = "pty.v1"
)

// Caps is what this package implements, in the order announced.
func Caps() []string {
	return []string{CapAuth, CapAck, CapBulk, CapStream, CapErrKind, CapPty}
}

// HasCap reports whether caps contains c.
func HasCap(caps []string, c string) bool { return slices.Contains(caps, c) }

// CommonCaps is the capabilities of a that b has too, in a's order: what
// both sides of a handshake use.
func CommonCaps(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// Ack acknowledges every journaled message up to and including Seq
// (type 100, key "ack").
type Ack struct {
	Seq uint64 `json:"seq"`
}

// Ps lists the agent's running exec tasks (type 102, key "ps").
type Ps struct {
	Tasks []PsTask `json:"tasks"`
}

// PsTask is one running exec task.
type PsTask struct {
	TaskID string    `json:"task_id"` // tid of the exec
	Pid    int       `json:"pid"`
	Begin  time.Time `json:"begin"`
}

// ExecKillRep answers an exec_kill that carried a tid (type 103, key
// "exec_kill_rep"; CapStream). OK false with Msg MsgNoSuchTask when nothing
// matched.
type ExecKillRep struct {
	OK     bool    `json:"ok"`
	Msg    string  `json:"msg,omitempty"`
	TaskID string  `json:"task_id,omitempty"`
	Pid    int     `json:"pid,omitempty"`
	Kind   ErrKind `json:"kind,omitempty"` // classifies Msg (CapErrKind)
}

// MsgNoSuchTask is ExecKillRep.Msg when no running task matched.
const MsgNoSuchTask = "no such task"
