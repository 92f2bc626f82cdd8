package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hostmetrics"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/layout"
	"github.com/agentfleet/agent-server/internal/logging"
	"github.com/agentfleet/agent-server/internal/shell"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/internal/tasks"
)

// TestMapError pins the status and message of every kind of error the
// services return: the answers clients (and 1.5 clients) see.
func TestMapError(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("run on agent a1: %w", err) }
	specErr := (&execsvc.Spec{Cmd: "ls", Auth: "doas"}).Validate()
	_, scopeErr := authz.Parse([]string{"nope"})
	_, selErr := authz.NewIdentity("t", []authz.Scope{authz.AgentsRead}, "a,,b", time.Time{})
	_, kindsErr := hostmetrics.ParseKinds([]string{"tcp", "nope"})
	for _, err := range []error{specErr, scopeErr, selErr, kindsErr} {
		if err == nil {
			t.Fatal("a prepared bad input was accepted")
		}
	}
	agentErr := &hub.AgentError{AgentID: "a1", Msg: "permission denied", Kind: protocol.KindDenied}
	cases := []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"api error kept", japi.BadParam("x", "bad"), 400, "invalid parameter x: bad"},
		{"api error wrapped kept", wrap(japi.NotFound("thing")), 404, "not found: thing"},
		{"spec invalid", wrap(specErr), 400, "invalid parameter auth: must be one of su, sudo"},
		{"file name invalid", execsvc.ValidName("a/b"), 400, fault.Message(execsvc.ValidName("a/b"))},
		{"scope with param", scopeErr, 400, "invalid parameter scopes: " + fault.Message(scopeErr)},
		{"selector with param", selErr, 400, "invalid parameter selector: " + fault.Message(selErr)},
		{"fault without sentinel", fault.Invalidf(nil, "wrong"), 400, "wrong"},
		{"hostmetrics bad value", kindsErr, 400, fault.Message(kindsErr)},
		{"task agent not found", fault.New(fault.NotFound, tasks.ErrAgentNotFound, "agent %s", "a9"), 404, "not found: agent a9"},
		{"start failed", wrap(fault.New(fault.Unavailable, execsvc.ErrStartFailed, "exec format error")), 503, "exec format error"},
		{"start failed with agent's reply", fmt.Errorf("run: %w: %w", execsvc.ErrStartFailed, agentErr), 403, "permission denied"},
		{"invalid before agent error", errors.Join(fault.Invalidf(execsvc.ErrInvalid, "bad"), agentErr), 400, "bad"},
		{"agent error by kind", wrap(agentErr), 403, "permission denied"},
		{"agent error without kind", &hub.AgentError{AgentID: "a1", Msg: "disk full"}, 503, "disk full"},
		{"layout invalid", fault.Invalidf(layout.ErrInvalid, "main: no tasks"), 400, "main: no tasks"},
		{"store invalid keeps its text", fmt.Errorf("store: put: %w", fault.Invalidf(store.ErrInvalid, "labels: more than 64")), 400, "store: put: invalid: labels: more than 64"},
		{"store invalid plain", fmt.Errorf("store: %w: empty id", store.ErrInvalid), 400, "store: invalid: empty id"},
		{"logging param", &logging.ParamError{Param: "pid", Msg: "required"}, 400, "invalid parameter pid: required"},
		{"logging not found", wrap(logging.ErrNotFound), 404, "not found: project"},
		{"logging running", logging.ErrRunning, 409, logging.ErrRunning.Error()},
		{"logging no nodes", logging.ErrNoNodes, 409, logging.ErrNoNodes.Error()},
		{"logging not running", logging.ErrNotRunning, 409, logging.ErrNotRunning.Error()},
		{"agent not connected", wrap(hub.ErrAgentNotFound), 404, "not found: agent"},
		{"agent gone", wrap(hub.ErrAgentGone), 410, "agent went away: the connection closed before it answered"},
		{"queue full", hub.ErrQueueFull, 503, "agent too slow: its send queue stayed full, it was disconnected"},
		{"reply ended", wrap(io.EOF), 503, "the agent ended its reply early"},
		{"stream overflow", hub.ErrStreamOverflow, 503, "the agent ended its reply early"},
		{"hub closed", hub.ErrClosed, 503, "server shutting down"},
		{"exec closed", execsvc.ErrClosed, 503, "server shutting down"},
		{"tasks closed", tasks.ErrClosed, 503, "server shutting down"},
		{"shell closed", shell.ErrClosed, 503, "server shutting down"},
		{"deadline", wrap(context.DeadlineExceeded), 504, "timeout: the agent did not answer in time"},
		{"client gone", context.Canceled, 499, "client closed the request"},
		{"no such task", wrap(execsvc.ErrNoSuchTask), 404, "not found: task"},
		{"checksum", execsvc.ErrChecksum, 409, "invalid checksum"},
		{"too large", execsvc.ErrTooLarge, 413, "file too large"},
		{"range", execsvc.ErrRange, 416, "range not satisfiable"},
		{"transfer not found", execsvc.ErrTransferNotFound, 404, "not found: transfer"},
		{"transfer token", execsvc.ErrTransferToken, 401, "invalid transfer token"},
		{"transfer aborted", execsvc.ErrTransferAborted, 410, "transfer aborted: the server no longer waits for it"},
		{"wrong agent type", fmt.Errorf("%w want [exec-agent] got [x]", tasks.ErrAgentType), 424, "invalid agent type want [exec-agent] got [x]"},
		{"task not found", tasks.ErrNotFound, 404, "not found: task"},
		{"task finished", fmt.Errorf("task t1: %w (done)", tasks.ErrFinished), 409, "task t1: task already finished (done)"},
		{"no metrics", hostmetrics.ErrNoData, 404, "not found: metrics"},
		{"unexpected metrics reply", fmt.Errorf("agent a1: %w 7", hostmetrics.ErrUnexpectedReply), 503, "agent a1: unexpected reply type 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ae *japi.Error
			if !errors.As(mapError(c.err), &ae) {
				t.Fatalf("mapError(%v) = %v: not an API error", c.err, mapError(c.err))
			}
			if ae.Code != c.code || ae.Msg != c.msg {
				t.Errorf("mapError(%v) = %d %q, want %d %q", c.err, ae.Code, ae.Msg, c.code, c.msg)
			}
			if c.code >= 400 && c.code < 500 && strings.HasPrefix(ae.Msg, "invalid request: ") {
				t.Errorf("message %q carries a sentinel's text", ae.Msg)
			}
		})
	}
	// Anything else stays as it is: a 500 without detail for the client.
	other := errors.New("disk on fire")
	if got := mapError(other); got != other {
		t.Errorf("mapError(unclassified) = %v, want it unchanged", got)
	}
	if mapError(nil) != nil {
		t.Error("mapError(nil) != nil")
	}
}
