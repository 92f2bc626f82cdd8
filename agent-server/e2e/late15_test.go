package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/execsvc"

	"github.com/agentfleet/jkframe/eventually"
)

// agent15 speaks protocol v1 as jkstack 1.5's exec-agent does: no
// extensions at all, and its output pump and its exit report run
// independently, so the last exec_data frames may follow exec_done. Every
// exec prints `seq 1 200000`; all but the last lateBytes go before
// exec_done, the rest after it, in 4 KiB frames gap apart.
type agent15 struct {
	t    *testing.T
	c    *websocket.Conn
	mu   sync.Mutex
	wg   sync.WaitGroup
	gap  time.Duration
	late int
}

func seqText(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

func startAgent15(t *testing.T, addr, id string, lateBytes int, gap time.Duration) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws/agent", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	a := &agent15{t: t, c: c, gap: gap, late: lateBytes}
	a.send(&protocol.Msg{Type: protocol.TypeCome, Payload: &protocol.Come{ID: id, Name: "exec-agent", Version: "1.5.0", OS: "linux", Arch: "amd64"}})
	if _, b, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	} else if m, err := protocol.Decode(b); err != nil || m.Handshake() == nil || !m.Handshake().OK {
		t.Fatalf("handshake: %s %v", b, err)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if m, err := protocol.Decode(b); err == nil && m.Type == protocol.TypeExec {
				a.wg.Add(1)
				go func() { defer a.wg.Done(); a.exec(m.TID) }()
			}
		}
	}()
	// Keepalive, as every agent sends: the hub closes a silent peer.
	stop := make(chan struct{})
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = c.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second))
			}
		}
	}()
	t.Cleanup(func() { close(stop); c.Close(); a.wg.Wait() })
}

func (a *agent15) send(m *protocol.Msg) {
	b, err := protocol.Encode(m)
	if err != nil {
		a.t.Error(err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = a.c.WriteMessage(websocket.TextMessage, b)
}

func (a *agent15) exec(tid string) {
	start := time.Now()
	a.send(&protocol.Msg{Type: protocol.TypeExecd, TID: tid, Payload: &protocol.Execd{OK: true, Pid: 4000 + int(start.UnixNano()%1000), Time: start}})
	out := []byte(seqText(200000))
	data := func(p []byte) {
		a.send(&protocol.Msg{Type: protocol.TypeExecData, TID: tid, Payload: &protocol.ExecData{Data: base64.StdEncoding.EncodeToString(p)}})
	}
	early := out[:len(out)-a.late]
	for len(early) > 0 {
		n := min(len(early), 32<<10)
		data(early[:n])
		early = early[n:]
	}
	a.send(&protocol.Msg{Type: protocol.TypeExecDone, TID: tid, Payload: &protocol.ExecDone{Code: 0, Time: time.Now()}})
	rest := out[len(out)-a.late:]
	for len(rest) > 0 {
		time.Sleep(a.gap) // the pump is behind the exit report
		n := min(len(rest), 4<<10)
		data(rest[:n])
		rest = rest[n:]
	}
}

// TestLegacyTailAfterDone: a jkstack 1.5 exec-agent's output reaches the
// synchronous reply and the stored output whole, although its last 14 KB
// come after exec_done (issue 14 item 2). The sync runs check the reply,
// the async ones read the output through /pty/{pid} as 1.5 clients poll it,
// then once more from offset 0 (the stored output).
func TestLegacyTailAfterDone(t *testing.T) {
	want := seqText(200000)
	if len(want) != 1288895 {
		t.Fatalf("seq text %d bytes", len(want))
	}
	ts := startServer(t, serverSpec{
		mod: func(c *config.Config) { c.AllowLegacyAgents = true },
		// The agent's frames come 150 ms apart (over 500 ms in all, longer
		// than the old fixed window); a quiet window of 1.5 s covers the
		// gaps on a busy machine.
		exec: func(o *execsvc.Options) { o.LateData = 1500 * time.Millisecond },
	})
	startAgent15(t, ts.addr, "old15", 14<<10, 150*time.Millisecond)
	ts.waitOnline("old15")

	for i := range 3 {
		rep := ts.run("old15", map[string]any{"cmd": "seq 1 200000", "timeout": 60})
		r := rep.Result
		if r == nil || r.Running || r.State != "ok" || r.Code != 0 {
			t.Fatalf("sync run %d: %+v", i, r)
		}
		if string(r.Data) != want || r.OutputBytes != int64(len(want)) || r.Dropped != 0 {
			t.Fatalf("sync run %d: %d bytes in the reply (output_bytes %d, dropped %d), want %d", i, len(r.Data), r.OutputBytes, r.Dropped, len(want))
		}
	}

	for i := range 3 {
		rep := ts.run("old15", map[string]any{"cmd": "seq 1 200000", "timeout": 60, "result": false})
		pty := fmt.Sprintf("/api/exec/old15/pty/%d", rep.PID)
		var got []byte
		eventually.Within(t, 60*time.Second, "the output to its end", func() bool {
			e := ts.get(pty)
			if e.status != http.StatusOK {
				t.Fatalf("pty: %d %s", e.status, e.body)
			}
			got = append(got, e.body...)
			return e.header.Get("X-Done") == "true" && len(e.body) == 0
		})
		if string(got) != want {
			t.Fatalf("async run %d: %d bytes read through pty, want %d", i, len(got), len(want))
		}
		e := ts.get(pty + "?offset=0")
		stored := append([]byte(nil), e.body...)
		for off := len(stored); e.status == http.StatusOK && len(e.body) > 0; off = len(stored) {
			e = ts.get(fmt.Sprintf("%s?offset=%d", pty, off))
			stored = append(stored, e.body...)
		}
		if string(stored) != want {
			t.Fatalf("async run %d: %d bytes stored, want %d", i, len(stored), len(want))
		}
	}
}
