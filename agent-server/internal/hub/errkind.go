package hub

import (
	"strings"

	"github.com/agentfleet/libagent/protocol"
)

// AgentError returns the error of a failure reply from this agent, with
// the kind it sent. An agent without protocol.CapErrKind sends none: its
// kind is read from the message (LegacyKind). A kind this server does not
// know counts as the agent's own failure.
func (s *Session) AgentError(tid, msg string, kind protocol.ErrKind) *AgentError {
	switch {
	case !s.HasCap(protocol.CapErrKind):
		kind = LegacyKind(msg)
	case !kind.Known():
		kind = ""
	}
	return &AgentError{AgentID: s.id, TID: tid, Msg: msg, Kind: kind}
}

// legacyErrnos are the endings of error messages that v1 agents (jkstack
// 1.x, written in Go) send for failures caused by the request: Go's texts
// of the errno (Unix) or of the Windows error (Go asks Windows for its
// English text), which the agents return unwrapped at the end of their
// messages ("open /x: no such file or directory"). Only endings that always
// mean the same are listed: "invalid argument" is not (it is as often the
// agent's own bug).
var legacyErrnos = []struct {
	suffix string
	kind   protocol.ErrKind
}{
	{": no such file or directory", protocol.KindNotFound},
	{": The system cannot find the file specified.", protocol.KindNotFound},
	{": The system cannot find the path specified.", protocol.KindNotFound},
	{": permission denied", protocol.KindDenied},
	{": Access is denied.", protocol.KindDenied},
	{": not a directory", protocol.KindUnprocessable},
	{": is a directory", protocol.KindUnprocessable},
	{": argument list too long", protocol.KindUnprocessable},
	{": file name too long", protocol.KindUnprocessable},
	{": The directory name is invalid.", protocol.KindUnprocessable},
	{": no space left on device", protocol.KindNoSpace},
	{": disk quota exceeded", protocol.KindNoSpace},
	{": There is not enough space on the disk.", protocol.KindNoSpace},
}

// LegacyKind classifies the message of a v1 agent's failure reply by the
// standard error text it ends with, or an os/user "unknown user/group"
// error; anything else is "" (the agent's own failure). It reads text, so
// it is only the fallback for agents that cannot say the kind themselves.
func LegacyKind(msg string) protocol.ErrKind {
	msg = strings.TrimRight(msg, " \r\n")
	for _, e := range legacyErrnos {
		if strings.HasSuffix(msg, e.suffix) {
			return e.kind
		}
	}
	// os/user: "user: unknown user bob", "group: unknown group ops".
	if strings.Contains(msg, "user: unknown user ") || strings.Contains(msg, "group: unknown group ") {
		return protocol.KindUnprocessable
	}
	return ""
}
