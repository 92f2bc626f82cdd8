package agent

import (
	"errors"
	"os/user"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/files"
	"github.com/agentfleet/exec-agent/internal/runner"
)

// kindOf classifies a failure for its reply (protocol.CapErrKind): the
// request errors this agent knows by type — a path or file name breaking
// the path rule, an invalid exec request, a download of something that is
// not a regular file, an unknown user or group, an interactive shell on an
// OS without pty support, a kill with no such task —
// then the standard ones (protocol.KindOf). Anything else is the agent's
// own failure (empty kind).
func kindOf(err error) protocol.ErrKind {
	var (
		unknownUser  user.UnknownUserError
		unknownGroup user.UnknownGroupError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, new(*protocol.KindError)):
		return protocol.KindOf(err)
	case errors.Is(err, files.ErrPath), errors.Is(err, files.ErrName), errors.Is(err, runner.ErrSpec):
		return protocol.KindInvalid
	case errors.Is(err, files.ErrNotRegular), errors.As(err, &unknownUser), errors.As(err, &unknownGroup),
		errors.Is(err, runner.ErrShellUnsupported):
		return protocol.KindUnprocessable
	case errors.Is(err, runner.ErrNoTask):
		return protocol.KindNotFound
	}
	return protocol.KindOf(err)
}
