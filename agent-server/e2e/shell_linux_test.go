package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/agent-server/internal/shell"

	"github.com/agentfleet/jkframe/eventually"
)

// TestShellDeadClient: a client that stops answering (no frame, no pong)
// is dropped after DeadAfter, and its session's processes on the real
// exec-agent die.
func TestShellDeadClient(t *testing.T) {
	ts := startServer(t, serverSpec{shell: func(o *shell.Options) {
		o.PingInterval, o.DeadAfter = 50*time.Millisecond, 500*time.Millisecond
	}})
	id := realAgents(t, ts, 1)[0]
	tag := fmt.Sprintf("1000.%d", 100000+rand.IntN(800000))
	u := "ws://" + ts.addr + "/api/exec/" + id + "/shell?cmd=" + url.QueryEscape("sleep "+tag)
	ws, _, err := (&websocket.Dialer{HandshakeTimeout: 20 * time.Second}).Dial(u, http.Header{"Authorization": {"Bearer " + opToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	eventually.Within(t, 20*time.Second, "the session's sleep to run", func() bool { return len(processesWith("sleep "+tag)) > 0 })
	// The client reads nothing from now on, so it answers no ping.
	eventually.Within(t, 20*time.Second, "the dead client's processes to die", func() bool { return len(processesWith("sleep "+tag)) == 0 })
	eventually.Within(t, 20*time.Second, "the session's end in the audit", func() bool {
		e := ts.get("/api/audit?action=GET%20/api/exec/%7Bid%7D/shell&target=" + id)
		var list []struct {
			Detail struct {
				Event   string `json:"event"`
				Outcome string `json:"outcome"`
			} `json:"detail"`
		}
		_ = json.Unmarshal(e.Payload, &list)
		return len(list) == 2 && list[0].Detail.Event == "end" && list[0].Detail.Outcome == "client_closed"
	})
}
