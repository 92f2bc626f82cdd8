package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs the example agent against an in-process server, the way an
// agent author tests an agent: real WebSocket, real protocol.
func start(t *testing.T, greeting string) (*agenttest.Server, *Agent, string) {
	t.Helper()
	srv := agenttest.New(t, agenttest.Options{})
	a := &Agent{cfg: Config{Basic: libagent.DefaultBasic(), Example: Example{Greeting: greeting}}}
	a.cfg.Basic.Server = srv.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- libagent.Run(ctx, a.Describe(), libagent.Options{
			Logger:          slog.New(slog.DiscardHandler),
			SkipLimits:      true,
			MonitorInterval: 50 * time.Millisecond,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	ag, err := srv.WaitAgent(deadline(t))
	if err != nil {
		t.Fatal(err)
	}
	if ag.Come.Name != Name {
		t.Fatalf("come.name = %q, want %q", ag.Come.Name, Name)
	}
	return srv, a, ag.ID
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestFooBar(t *testing.T) {
	srv, a, id := start(t, "hello")
	ctx := deadline(t)
	for range 3 {
		tid, err := srv.Send(ctx, id, &protocol.Msg{Type: protocol.TypeFoo})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := srv.Await(ctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Type != protocol.TypeBar || rep.TID != tid {
			t.Fatalf("reply = type %d tid %q, want bar with tid %q", rep.Type, rep.TID, tid)
		}
	}
	if got := a.foos.Load(); got != 3 {
		t.Fatalf("foo count = %d, want 3", got)
	}
}

// The custom self-report field arrives in the type-7 report.
func TestReportField(t *testing.T) {
	srv, _, id := start(t, "hello")
	ctx := deadline(t)
	tid, err := srv.Send(ctx, id, &protocol.Msg{Type: protocol.TypeFoo})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Await(ctx, tid); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := srv.AwaitPush(ctx, protocol.TypeAgentInfo)
		if err != nil {
			t.Fatalf("no self-report with foo_count=1: %v", err)
		}
		if string(m.AI().Extra["foo_count"]) == "1" {
			return
		}
	}
}

func TestEcho(t *testing.T) {
	srv, _, id := start(t, "hi there")
	ctx := deadline(t)
	tests := []struct {
		name    string
		payload string // the frame after type and tid
		want    string // echo text, or
		wantErr string // in the type-0 errmsg
	}{
		{"ok", `"echo":{"text":"world"}`, "hi there, world", ""},
		{"missing payload", `"other":{}`, "", `type 200 (echo) needs payload "echo"`},
		{"bad payload", `"echo":{"text":5}`, "", "malformed message: json: cannot unmarshal number into Go struct field Echo.echo.text of type string"},
		{"too long", `"echo":{"text":"` + strings.Repeat("x", MaxEchoText+1) + `"}`, "", "echo: text is 4097 bytes, at most 4096"},
		{"bad utf-8", `"echo":{"text":"\ud800"}`, "hi there, \ufffd", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tid := fmt.Sprintf("echo-%d", i)
			if err := srv.SendRaw(id, fmt.Appendf(nil, `{"type":200,"tid":%q,%s}`, tid, tc.payload)); err != nil {
				t.Fatal(err)
			}
			rep, err := srv.Await(ctx, tid)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" {
				if rep.Type != protocol.TypeError || !strings.Contains(rep.ErrMsg, tc.wantErr) {
					t.Fatalf("reply = type %d errmsg %q, want error with %q", rep.Type, rep.ErrMsg, tc.wantErr)
				}
				return
			}
			got := protocol.PayloadOf[Echo](rep)
			if rep.Type != TypeEcho || got == nil || got.Text != tc.want {
				t.Fatalf("reply = type %d payload %+v, want echo %q", rep.Type, rep.Payload, tc.want)
			}
		})
	}
}

// The shipped manifest is valid together with the basic.* keys, and the
// shipped config passes it: the two cannot drift apart.
func TestManifestAndDefaultConfig(t *testing.T) {
	agenttest.ShippedConfig(t, filepath.Join("..", "..", "conf"))
}
