package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// Errors of requests to agents, exact texts.
var (
	errAgentNotFound = japi.NotFound("agent")
	errAgentGone     = &japi.Error{Code: http.StatusGone, Msg: "agent went away: the connection closed before it answered"}
	errQueueFull     = &japi.Error{Code: http.StatusServiceUnavailable, Msg: "agent too slow: its send queue stayed full, it was disconnected"}
	errShutdown      = &japi.Error{Code: http.StatusServiceUnavailable, Msg: "server shutting down"}
	errClientGone    = &japi.Error{Code: 499, Msg: "client closed the request"}
	errDiskFull      = &japi.Error{Code: http.StatusInsufficientStorage, Msg: "insufficient storage: cache_dir is above cache_threshold, retry later"}
)

// kindStatus is the status of an agent's failure by its kind; a failure
// without a kind is the agent's own (503).
var kindStatus = map[protocol.ErrKind]int{
	protocol.KindInvalid:       http.StatusBadRequest,
	protocol.KindNotFound:      http.StatusNotFound,
	protocol.KindDenied:        http.StatusForbidden,
	protocol.KindConflict:      http.StatusConflict,
	protocol.KindUnprocessable: http.StatusUnprocessableEntity,
}

// agentErrStatus is the status of an agent's failure reply.
func agentErrStatus(e *hub.AgentError) int {
	if code, ok := kindStatus[e.Kind]; ok {
		return code
	}
	return http.StatusServiceUnavailable
}

// maxErrMsg bounds the msg of an error envelope: messages quote request
// values (a command, a path), which can be megabytes long.
const maxErrMsg = 1024

// clipError shortens the message of err's *japi.Error to maxErrMsg bytes
// (at a character boundary), saying how much was cut.
func clipError(err error) error {
	var ae *japi.Error
	if !errors.As(err, &ae) || len(ae.Msg) <= maxErrMsg {
		return err
	}
	cut := maxErrMsg
	for cut > 0 && !utf8.RuneStart(ae.Msg[cut]) {
		cut--
	}
	return &japi.Error{Code: ae.Code, Msg: fmt.Sprintf("%s… (%d more bytes)", ae.Msg[:cut], len(ae.Msg)-cut), Err: err}
}

// mapError turns the hub's and the store's errors into API errors; an
// *japi.Error (anywhere in the chain) is kept, anything else stays a 500.
// An agent's failure reply keeps its message, with the status of its kind
// (kindStatus).
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var ae *japi.Error
	if errors.As(err, &ae) {
		return err
	}
	var agentErr *hub.AgentError
	switch {
	case errors.As(err, &agentErr):
		return &japi.Error{Code: agentErrStatus(agentErr), Msg: agentErr.Msg, Err: err}
	case errors.Is(err, hub.ErrAgentNotFound):
		return errAgentNotFound
	case errors.Is(err, hub.ErrAgentGone):
		return errAgentGone
	case errors.Is(err, hub.ErrQueueFull):
		return errQueueFull
	case errors.Is(err, io.EOF), errors.Is(err, hub.ErrStreamOverflow):
		return &japi.Error{Code: http.StatusServiceUnavailable, Msg: "the agent ended its reply early", Err: err}
	case errors.Is(err, hub.ErrClosed):
		return errShutdown
	case errors.Is(err, context.DeadlineExceeded):
		return &japi.Error{Code: http.StatusGatewayTimeout, Msg: "timeout: the agent did not answer in time", Err: err}
	case errors.Is(err, context.Canceled):
		return errClientGone
	case errors.Is(err, store.ErrInvalid):
		return &japi.Error{Code: http.StatusBadRequest, Msg: err.Error(), Err: err}
	}
	return err
}
