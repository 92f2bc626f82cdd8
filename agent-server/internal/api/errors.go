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

	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hostmetrics"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/installsvc"
	"github.com/agentfleet/agent-server/internal/logging"
	"github.com/agentfleet/agent-server/internal/shell"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/internal/tasks"
)

// Errors of requests to agents, exact texts.
var (
	errAgentNotFound = japi.NotFound("agent")
	errAgentGone     = &japi.Error{Code: http.StatusGone, Msg: "agent went away: the connection closed before it answered"}
	errQueueFull     = &japi.Error{Code: http.StatusServiceUnavailable, Msg: "agent too slow: its send queue stayed full, it was disconnected"}
	errShutdown      = &japi.Error{Code: http.StatusServiceUnavailable, Msg: "server shutting down"}
	errClientGone    = &japi.Error{Code: 499, Msg: "client closed the request"}
	errDiskFull      = &japi.Error{Code: http.StatusInsufficientStorage, Msg: "insufficient storage: cache_dir is above cache_threshold, retry later"}
	// errNoMetrics answers ?cached=1 when nothing was ever stored.
	errNoMetrics = japi.NotFound("metrics")
)

// kindStatus is the status of an agent's failure by its kind; a failure
// without a kind is the agent's own (503).
var kindStatus = map[protocol.ErrKind]int{
	protocol.KindInvalid:       http.StatusBadRequest,
	protocol.KindNotFound:      http.StatusNotFound,
	protocol.KindDenied:        http.StatusForbidden,
	protocol.KindConflict:      http.StatusConflict,
	protocol.KindUnprocessable: http.StatusUnprocessableEntity,
	protocol.KindNoSpace:       http.StatusInsufficientStorage,
}

// agentErrStatus is the status of an agent's failure reply.
func agentErrStatus(e *hub.AgentError) int {
	if code, ok := kindStatus[e.Kind]; ok {
		return code
	}
	return http.StatusServiceUnavailable
}

// faultStatus is the status of each fault.Kind.
var faultStatus = map[fault.Kind]int{
	fault.Invalid:     http.StatusBadRequest,
	fault.NotFound:    http.StatusNotFound,
	fault.Unavailable: http.StatusServiceUnavailable,
	fault.Conflict:    http.StatusConflict,
	fault.TooLarge:    http.StatusRequestEntityTooLarge,
}

// faultError is the answer to a classified error: the status of its kind
// and the message its service wrote for the caller.
func faultError(fe *fault.Error, err error) error {
	code, ok := faultStatus[fe.Kind]
	if !ok {
		code = http.StatusInternalServerError
	}
	msg := fe.Msg
	switch {
	case fe.Kind == fault.Invalid && fe.Param != "":
		msg = "invalid parameter " + fe.Param + ": " + fe.Msg
	case fe.Kind == fault.NotFound:
		msg = "not found: " + fe.Msg
	}
	return &japi.Error{Code: code, Msg: msg, Err: err}
}

// errorRule answers the errors that are an instance of is: with fixed,
// as it is, or else with a new error of code whose message is msg (the
// error's own text when msg is "").
type errorRule struct {
	is    error
	fixed *japi.Error
	code  int
	msg   string
}

// errorRules are the sentinel errors of the hub and the services, in the
// order they are checked.
var errorRules = []errorRule{
	{is: hub.ErrAgentNotFound, fixed: errAgentNotFound},
	{is: hub.ErrAgentGone, fixed: errAgentGone},
	{is: hub.ErrQueueFull, fixed: errQueueFull},
	{is: io.EOF, code: http.StatusServiceUnavailable, msg: "the agent ended its reply early"},
	{is: hub.ErrStreamOverflow, code: http.StatusServiceUnavailable, msg: "the agent ended its reply early"},
	{is: hub.ErrClosed, fixed: errShutdown},
	{is: execsvc.ErrClosed, fixed: errShutdown},
	{is: tasks.ErrClosed, fixed: errShutdown},
	{is: shell.ErrClosed, fixed: errShutdown},
	{is: context.DeadlineExceeded, code: http.StatusGatewayTimeout, msg: "timeout: the agent did not answer in time"},
	{is: context.Canceled, fixed: errClientGone},

	{is: execsvc.ErrNoSuchTask, code: http.StatusNotFound, msg: "not found: task"},
	{is: execsvc.ErrChecksum, code: http.StatusConflict, msg: "invalid checksum"},
	{is: execsvc.ErrTooLarge, code: http.StatusRequestEntityTooLarge, msg: "file too large"},
	{is: execsvc.ErrRange, code: http.StatusRequestedRangeNotSatisfiable, msg: "range not satisfiable"},
	{is: execsvc.ErrTransferNotFound, code: http.StatusNotFound, msg: "not found: transfer"},
	{is: execsvc.ErrTransferToken, code: http.StatusUnauthorized, msg: "invalid transfer token"},
	{is: execsvc.ErrTransferAborted, code: http.StatusGone, msg: "transfer aborted: the server no longer waits for it"},

	{is: tasks.ErrAgentType, code: http.StatusFailedDependency},
	{is: installsvc.ErrNoCapability, code: http.StatusUnprocessableEntity},
	{is: installsvc.ErrClosed, fixed: errShutdown},
	{is: tasks.ErrNotFound, code: http.StatusNotFound, msg: "not found: task"},
	{is: tasks.ErrFinished, code: http.StatusConflict},
	{is: tasks.ErrNoUpgrader, code: http.StatusServiceUnavailable},

	{is: hostmetrics.ErrNoData, fixed: errNoMetrics},
	{is: hostmetrics.ErrUnexpectedReply, code: http.StatusServiceUnavailable},

	{is: logging.ErrNotFound, fixed: japi.NotFound("project")},
	{is: logging.ErrNoNodes, code: http.StatusConflict},
	{is: logging.ErrRunning, code: http.StatusConflict},
	{is: logging.ErrNotRunning, code: http.StatusConflict},
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

// mapError is the one place where an error becomes the API's answer, its
// status and message; every handler's error goes through it. An
// *japi.Error (anywhere in the chain) is kept; a classified error
// (*fault.Error) gets the status of its kind and its message; an agent's
// failure reply keeps its message, with the status of its kind
// (kindStatus); the sentinels of the hub and the services answer as
// errorRules say; anything else stays a 500.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var ae *japi.Error
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, store.ErrInvalid) {
		// The store's own validation: the whole text names the operation.
		return &japi.Error{Code: http.StatusBadRequest, Msg: err.Error(), Err: err}
	}
	var pe *logging.ParamError
	if errors.As(err, &pe) {
		return japi.BadParam(pe.Param, pe.Msg)
	}
	fe, classified := fault.As(err)
	if classified && fe.Kind == fault.Invalid {
		return faultError(fe, err)
	}
	var agentErr *hub.AgentError
	if errors.As(err, &agentErr) {
		return &japi.Error{Code: agentErrStatus(agentErr), Msg: agentErr.Msg, Err: err}
	}
	if classified {
		return faultError(fe, err)
	}
	for _, r := range errorRules {
		if !errors.Is(err, r.is) {
			continue
		}
		if r.fixed != nil {
			return r.fixed
		}
		msg := r.msg
		if msg == "" {
			msg = err.Error()
		}
		return &japi.Error{Code: r.code, Msg: msg, Err: err}
	}
	return err
}
