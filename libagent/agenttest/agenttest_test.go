package agenttest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hello dials srv as a bare client, sends come and returns the handshake.
func hello(t *testing.T, srv *agenttest.Server, token string, come *protocol.Come) (*websocket.Conn, *protocol.Handshake, int) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(srv.URL(), h)
	if err != nil {
		if resp == nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return nil, nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.Close() })
	b, _ := protocol.Encode(&protocol.Msg{Type: protocol.TypeCome, Payload: come})
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	m, err := protocol.Decode(data)
	if err != nil || m.Handshake() == nil {
		t.Fatalf("handshake: %v %+v", err, m)
	}
	return ws, m.Handshake(), 101
}

func TestHandshakeRules(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{Token: "tok"})
	if _, _, code := hello(t, srv, "bad", &protocol.Come{}); code != http.StatusUnauthorized {
		t.Fatalf("bad token: HTTP %d, want 401", code)
	}
	_, hs, _ := hello(t, srv, "tok", &protocol.Come{Caps: protocol.Caps()})
	if !hs.OK || hs.ID == "" || hs.Secret == "" || !protocol.HasCap(hs.Caps, protocol.CapAck) {
		t.Fatalf("first handshake %+v", hs)
	}
	_, conflict, _ := hello(t, srv, "tok", &protocol.Come{ID: hs.ID, Caps: protocol.Caps()})
	if conflict.OK || conflict.Msg != protocol.MsgIDConflict {
		t.Fatalf("same id without secret: %+v", conflict)
	}
	_, again, _ := hello(t, srv, "tok", &protocol.Come{ID: hs.ID, Secret: hs.Secret, Caps: protocol.Caps()})
	if !again.OK || again.ID != hs.ID {
		t.Fatalf("same id with secret: %+v", again)
	}
	if n := len(srv.Agents()); n != 1 {
		t.Fatalf("%d agents listed after a replace, want 1", n)
	}
}

func TestV1AndReplies(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{V1: true})
	ws, hs, _ := hello(t, srv, "", &protocol.Come{Caps: protocol.Caps()})
	if !hs.OK || len(hs.Caps) != 0 || hs.Secret != "" {
		t.Fatalf("v1 handshake %+v", hs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tid, err := srv.Send(ctx, hs.ID, &protocol.Msg{Type: protocol.TypeFoo})
	if err != nil {
		t.Fatal(err)
	}
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := protocol.Decode(data); m == nil || m.Type != protocol.TypeFoo || m.TID != tid {
		t.Fatalf("agent got %s", data)
	}
	for _, m := range []*protocol.Msg{{Type: protocol.TypeBar, TID: tid}, {Type: protocol.TypeHMStaticReq}} {
		b, _ := protocol.Encode(m)
		_ = ws.WriteMessage(websocket.TextMessage, b)
	}
	if rep, err := srv.Await(ctx, tid); err != nil || rep.Type != protocol.TypeBar {
		t.Fatalf("Await: %+v %v", rep, err)
	}
	if p, err := srv.AwaitPush(ctx, protocol.TypeHMStaticReq); err != nil || p.TID != "" {
		t.Fatalf("AwaitPush: %+v %v", p, err)
	}
	if _, err := srv.Send(ctx, "nobody", &protocol.Msg{Type: protocol.TypeFoo}); err == nil {
		t.Fatal("Send to an unknown agent succeeded")
	}
}
