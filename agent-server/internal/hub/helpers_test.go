package hub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentfleet/libagent/protocol"
)

func TestMain(m *testing.M) { goleakMain(m) }

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

var testDay = time.Date(2026, 11, 24, 13, 0, 0, 0, time.UTC)

type testHub struct {
	*Hub
	srv   *httptest.Server
	reg   *prometheus.Registry
	store *MemStore
	url   string
}

// newTestHub serves a hub on loopback; opt adjusts the options.
func newTestHub(t *testing.T, opt func(*Options)) *testHub {
	t.Helper()
	reg := prometheus.NewRegistry()
	store := NewMemStore()
	// Most tests here speak plain v1, which the hub admits only with
	// AllowLegacy; the tests of that rule set it themselves.
	o := Options{Registry: reg, Clock: fixedClock{testDay}, Secrets: store, Acks: store, AllowLegacy: true,
		WriteTimeout: 2 * time.Second, AckDelay: 20 * time.Millisecond}
	if opt != nil {
		opt(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	th := &testHub{Hub: h, srv: srv, reg: reg, store: store, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return th
}

func (th *testHub) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := th.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.Label {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// agent is a test client speaking the protocol with a real gorilla conn.
type agent struct {
	t  *testing.T
	c  *websocket.Conn
	mu sync.Mutex // writes
	hs *protocol.Handshake
}

func dial(t *testing.T, url string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, hdr)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// connect dials and performs the handshake with come.
func connect(t *testing.T, th *testHub, come *protocol.Come, hdr http.Header) *agent {
	t.Helper()
	c, _, err := dial(t, th.url, hdr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	a := &agent{t: t, c: c}
	a.send(&protocol.Msg{Type: protocol.TypeCome, Payload: come})
	m := a.recv()
	if m.Type != protocol.TypeHandshake {
		t.Fatalf("first reply type %v, want handshake", m.Type)
	}
	a.hs = m.Handshake()
	return a
}

func (a *agent) send(m *protocol.Msg) {
	a.t.Helper()
	b, err := protocol.Encode(m)
	if err != nil {
		a.t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.c.WriteMessage(websocket.TextMessage, b); err != nil {
		a.t.Errorf("agent write: %v", err)
	}
}

func (a *agent) recv() *protocol.Msg {
	a.t.Helper()
	m, err := a.tryRecv(30 * time.Second) // a bound for a hang, not a speed
	if err != nil {
		a.t.Fatalf("agent read: %v", err)
	}
	return m
}

func (a *agent) tryRecv(d time.Duration) (*protocol.Msg, error) {
	_ = a.c.SetReadDeadline(time.Now().Add(d))
	_, b, err := a.c.ReadMessage()
	if err != nil {
		return nil, err
	}
	return protocol.Decode(b)
}

// serve answers requests until the connection ends: foo → bar, exec →
// execd, one exec_data, exec_done; anything else → type 0.
func (a *agent) serve() (done <-chan struct{}) {
	ch := make(chan struct{})
	// recv's deadline (from the handshake) must not end serving: on a busy
	// machine the test can take longer than it.
	_ = a.c.SetReadDeadline(time.Time{})
	go func() {
		defer close(ch)
		for {
			_, b, err := a.c.ReadMessage()
			if err != nil {
				return
			}
			m, err := protocol.Decode(b)
			if err != nil {
				continue
			}
			switch m.Type {
			case protocol.TypeFoo:
				a.sendQuiet(protocol.Reply(m, protocol.TypeBar))
			case protocol.TypeExec:
				now := time.Now()
				a.sendQuiet(&protocol.Msg{Type: protocol.TypeExecd, TID: m.TID, Payload: &protocol.Execd{OK: true, Pid: 42, Time: now}})
				a.sendQuiet(&protocol.Msg{Type: protocol.TypeExecData, TID: m.TID, Payload: &protocol.ExecData{Data: "aGk="}})
				a.sendQuiet(&protocol.Msg{Type: protocol.TypeExecDone, TID: m.TID, Payload: &protocol.ExecDone{Code: 0, Time: now}})
			case protocol.TypeAck:
			default:
				if r := protocol.Unsupported(m); r != nil {
					a.sendQuiet(r)
				}
			}
		}
	}()
	return ch
}

func (a *agent) sendQuiet(m *protocol.Msg) {
	b, _ := protocol.Encode(m)
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.c.WriteMessage(websocket.TextMessage, b)
}

func come(id string, caps ...string) *protocol.Come {
	return &protocol.Come{ID: id, Name: "example-agent", Version: "1.0.0", OS: "linux", Arch: "amd64", Caps: caps}
}

var _ = testutil.ToFloat64
