//go:build unix

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"
)

// Light simulated exec-agents for the scale tests: each is a bare
// WebSocket connection that speaks the handshake and answers exec with
// execd and exec_done code 0, after a delay when asked. They count the
// execs they hold at once across all agents. With a hold of h, every
// exec is held until h execs have been in flight at once (across all
// agents; once reached, the gate stays open): a scheduler that keeps its
// cap full is seen doing so however slowly the machine runs, and one that
// never reaches it leaves the task hanging. They run in a child process
// (this test binary run again with TASKS_SIM_CHILD set), so that 10,000
// agents and the server each stay within the file descriptor limit; the
// parent reads their counters over the child's stdin and stdout.

type simStats struct {
	Connected int64 `json:"connected"`
	Execs     int64 `json:"execs"`
	Peak      int64 `json:"peak"`
	Failures  int64 `json:"failures"`
	LastErr   string
}

// TestSimAgentsChild is the child process; it does nothing in a normal run.
func TestSimAgentsChild(t *testing.T) {
	url := os.Getenv("TASKS_SIM_CHILD")
	if url == "" {
		t.Skip("helper process of the scale tests")
	}
	n, _ := strconv.Atoi(os.Getenv("TASKS_SIM_N"))
	delay, _ := time.ParseDuration(os.Getenv("TASKS_SIM_DELAY"))
	hold, _ := strconv.ParseInt(os.Getenv("TASKS_SIM_HOLD"), 10, 64)
	ls := &lightSim{url: url, delay: delay, hold: hold, open: make(chan struct{})}
	if hold <= 0 {
		close(ls.open)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ls.run(ctx, n); close(done) }()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		b, _ := json.Marshal(ls.stats())
		fmt.Println(string(b))
	}
	cancel()
	<-done
}

type lightSim struct {
	url                                   string
	delay                                 time.Duration
	hold                                  int64         // see the comment at the top
	open                                  chan struct{} // closed once hold execs were in flight
	openOnce                              sync.Once
	connected, execs, cur, peak, failures atomic.Int64
	errMu                                 sync.Mutex
	lastErr                               string
}

func (ls *lightSim) stats() simStats {
	ls.errMu.Lock()
	defer ls.errMu.Unlock()
	return simStats{Connected: ls.connected.Load(), Execs: ls.execs.Load(), Peak: ls.peak.Load(), Failures: ls.failures.Load(), LastErr: ls.lastErr}
}

func (ls *lightSim) run(ctx context.Context, n int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range n {
		sem <- struct{}{}
		c, err := ls.dial(ctx, fmt.Sprintf("sim%05d", i))
		<-sem
		if err != nil {
			ls.failures.Add(1)
			ls.errMu.Lock()
			ls.lastErr = err.Error()
			ls.errMu.Unlock()
			continue
		}
		ls.connected.Add(1)
		wg.Go(func() { ls.serve(ctx, c) })
	}
	<-ctx.Done()
	wg.Wait()
}

func (ls *lightSim) dial(ctx context.Context, id string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	h := http.Header{"Authorization": {"Bearer " + agentToken}}
	c, _, err := d.DialContext(ctx, ls.url, h)
	if err != nil {
		return nil, err
	}
	come := &protocol.Come{ID: id, Name: "exec-agent", Version: "0.0.0-sim", HostName: id, OS: "linux", Platform: "sim", Arch: "amd64",
		Caps: []string{protocol.CapAuth}}
	b, _ := protocol.Encode(&protocol.Msg{Type: protocol.TypeCome, Payload: come})
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		c.Close()
		return nil, err
	}
	_, b, err = c.ReadMessage()
	if err != nil {
		c.Close()
		return nil, err
	}
	m, err := protocol.Decode(b)
	if err != nil || m.Handshake() == nil || !m.Handshake().OK {
		c.Close()
		return nil, fmt.Errorf("handshake of %s refused: %s", id, b)
	}
	return c, nil
}

func (ls *lightSim) serve(ctx context.Context, c *websocket.Conn) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	var wmu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	answer := func(m *protocol.Msg) {
		now := time.Now()
		execd := &protocol.Msg{Type: protocol.TypeExecd, TID: m.TID, Payload: &protocol.Execd{OK: true, Pid: 1, Time: now}}
		done := &protocol.Msg{Type: protocol.TypeExecDone, TID: m.TID, Payload: &protocol.ExecDone{Code: 0, Time: now}}
		wmu.Lock()
		defer wmu.Unlock()
		for i, r := range []*protocol.Msg{execd, done} {
			if i == 1 {
				select {
				case <-ls.open:
				case <-ctx.Done():
					return
				}
				if ls.delay > 0 {
					time.Sleep(ls.delay)
				}
				ls.cur.Add(-1) // before exec_done goes out: the server may launch the next
			}
			b, _ := protocol.Encode(r)
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_ = c.WriteMessage(websocket.TextMessage, b)
		}
	}
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			return
		}
		m, err := protocol.Decode(b)
		if err != nil || m.Type != protocol.TypeExec {
			continue
		}
		ls.execs.Add(1)
		n := ls.cur.Add(1)
		for p := ls.peak.Load(); n > p && !ls.peak.CompareAndSwap(p, n); p = ls.peak.Load() {
		}
		if ls.hold > 0 && n >= ls.hold {
			ls.openOnce.Do(func() { close(ls.open) })
		}
		wg.Go(func() { answer(m) })
	}
}

// simChild runs n light agents against ts in a child process.
type simChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// Each exec takes delay; hold > 0 holds them all until hold are in flight
// at once (see the top of this file).
func startSimChild(t testing.TB, addr string, n int, delay time.Duration, hold int) *simChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSimAgentsChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TASKS_SIM_CHILD=ws://"+addr+"/ws/agent", "TASKS_SIM_N="+strconv.Itoa(n),
		"TASKS_SIM_DELAY="+delay.String(), "TASKS_SIM_HOLD="+strconv.Itoa(hold))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := &simChild{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
	})
	return sc
}

func (sc *simChild) stats(t testing.TB) simStats {
	t.Helper()
	if _, err := io.WriteString(sc.in, "stats\n"); err != nil {
		t.Fatal(err)
	}
	for sc.out.Scan() {
		var s simStats
		if json.Unmarshal(sc.out.Bytes(), &s) == nil {
			return s
		}
	}
	t.Fatal("the simulated agents' process ended")
	return simStats{}
}

// connect waits until all n agents are connected to the server.
func (sc *simChild) connect(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s := sc.stats(t)
		if s.Connected == int64(n) {
			break
		}
		if s.Failures > 0 || time.Now().After(deadline) {
			t.Fatalf("simulated agents: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
