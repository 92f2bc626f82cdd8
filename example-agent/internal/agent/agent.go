// Package agent is the example agent: its config, its handlers and its
// self-report field, wired into libagent by New.
package agent

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"
)

// Name is the agent type the server sees (come.name); /api/foo/:id only
// talks to agents of this type.
const Name = "example-agent"

// TypeEcho is an agent-defined message type: the server (or a test) sends
// {"type":200,"tid":...,"echo":{"text":"..."}} and the agent answers with
// the same type and {"echo":{"text":"<greeting>, <text>"}}. Agent-defined
// types use the numbers 200–999; registering one names its payload key and
// Go type, so Decode hands the handler an *Echo (and refuses a frame whose
// payload does not fit).
var TypeEcho = protocol.Register[Echo](200, "echo", "echo")

// MaxEchoText bounds the echoed text, as every handler of outside input
// should bound what it accepts.
const MaxEchoText = 4096

// Config is conf/agent.conf: the basic.* keys every agent has, and the
// agent's own section.
type Config struct {
	Basic   libagent.Basic `kv:"basic"`
	Example Example        `kv:"example"`
}

// Example holds the example.* keys.
type Example struct {
	// Greeting prefixes every echo reply.
	Greeting string `kv:"greeting"`
}

// Echo is the payload of TypeEcho, under the key "echo".
type Echo struct {
	Text string `json:"text"`
}

// Agent is the example agent's state: its config and a counter it reports.
type Agent struct {
	cfg  Config
	foos atomic.Int64
}

// New returns the agent description that libagent.Main runs.
func New() *libagent.Agent {
	a := &Agent{cfg: Config{Basic: libagent.DefaultBasic(), Example: Example{Greeting: "hello"}}}
	return a.Describe()
}

// Describe returns the libagent description of a (tests build an Agent with
// their own config).
func (a *Agent) Describe() *libagent.Agent {
	return &libagent.Agent{
		Name:   Name,
		Config: &a.cfg,
		Setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypeFoo, a.foo)
			rt.Handle(TypeEcho, a.echo)
			return nil
		},
		// A custom self-report field: it shows up in the type-7 report
		// next to the standard keys.
		Report: func(extra map[string]any) { extra["foo_count"] = a.foos.Load() },
	}
}

// foo answers the server's foo (type 8) with bar (type 9), no payload.
func (a *Agent) foo(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	a.foos.Add(1)
	return w.Reply(ctx, protocol.Reply(req, protocol.TypeBar))
}

// echo answers TypeEcho. A returned error becomes a type-0 reply with the
// error text for the request's tid.
func (a *Agent) echo(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	in := protocol.PayloadOf[Echo](req) // Decode guarantees it for TypeEcho
	if len(in.Text) > MaxEchoText {
		return fmt.Errorf("echo: text is %d bytes, at most %d", len(in.Text), MaxEchoText)
	}
	if !utf8.ValidString(in.Text) {
		return fmt.Errorf("echo: text is not valid UTF-8")
	}
	rep := protocol.Reply(req, TypeEcho)
	rep.Payload = &Echo{Text: strings.TrimSpace(a.cfg.Example.Greeting + ", " + in.Text)}
	return w.Reply(ctx, rep)
}
