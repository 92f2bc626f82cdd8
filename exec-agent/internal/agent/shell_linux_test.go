package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

// ptyClient is the server side of one interactive session, as a test
// drives it: it reads the session's messages in order, keeps the output,
// returns output credits (at once, or only when the window is full), and
// sends input within the credits the agent granted.
type ptyClient struct {
	e      *env
	tid    string
	pid    int // pty_opened.pid
	window int // output window granted to the agent
	lazy   bool
	gate   chan struct{}

	mu          sync.Mutex
	out         bytes.Buffer
	outBytes    int64
	nmsg        int
	outstanding int // output messages received, not yet acked
	maxOut      int
	inCredit    int
	exit        *protocol.PtyExit
	other       []string // unexpected messages

	cancel context.CancelFunc
	done   chan struct{}
}

type ptyOpts struct {
	window int  // output window; 0: 8
	lazy   bool // ack output only when the window is full
	keep   bool // keep the output (false: count it only)
	// gate, when set, holds the first ack until it is closed.
	gate chan struct{}
}

// openShell sends pty_open and returns the client once pty_opened said ok.
func (e *env) openShell(o protocol.PtyOpen, po ptyOpts) *ptyClient {
	e.t.Helper()
	c, opened := e.tryOpenShell(o, po)
	if !opened.OK {
		e.t.Fatalf("pty_opened: %+v", opened)
	}
	return c
}

func (e *env) tryOpenShell(o protocol.PtyOpen, po ptyOpts) (*ptyClient, *protocol.PtyOpened) {
	e.t.Helper()
	if po.window == 0 {
		po.window = 8
	}
	if o.Cols == 0 && o.Rows == 0 {
		o.Cols, o.Rows = 80, 24
	}
	o.Window = uint32(po.window)
	tid := e.send(&protocol.Msg{Type: protocol.TypePtyOpen, Payload: &o})
	m := e.await(tid, 20*time.Second)
	if m.Type != protocol.TypePtyOpened {
		e.t.Fatalf("first reply %v (%s), want pty_opened", m.Type, m.ErrMsg)
	}
	if !m.PtyOpened().OK {
		return nil, m.PtyOpened()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &ptyClient{e: e, tid: tid, pid: m.PtyOpened().Pid, window: po.window, lazy: po.lazy, gate: po.gate, inCredit: protocol.PtyWindow(m.PtyOpened().Window), cancel: cancel, done: make(chan struct{})}
	go c.loop(ctx, po.keep || !po.lazy)
	e.t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c, m.PtyOpened()
}

func (c *ptyClient) loop(ctx context.Context, keep bool) {
	defer close(c.done)
	for {
		m, err := c.e.srv.Await(ctx, c.tid)
		if err != nil {
			return
		}
		c.mu.Lock()
		switch m.Type {
		case protocol.TypePtyOutput:
			b, err := m.PtyData().Bytes()
			if err != nil {
				c.other = append(c.other, err.Error())
			}
			if keep {
				c.out.Write(b)
			}
			c.outBytes += int64(len(b))
			c.nmsg++
			c.outstanding++
			c.maxOut = max(c.maxOut, c.outstanding)
			if !c.lazy || c.outstanding == c.window {
				n := c.outstanding
				c.outstanding = 0
				c.mu.Unlock()
				if c.gate != nil {
					select {
					case <-c.gate:
					case <-ctx.Done():
						return
					}
				}
				c.send(&protocol.Msg{Type: protocol.TypePtyAck, Payload: &protocol.PtyAck{N: uint32(n)}})
				continue
			}
		case protocol.TypePtyAck:
			c.inCredit += int(m.PtyAck().N)
		case protocol.TypePtyExit:
			c.exit = m.PtyExit()
			c.mu.Unlock()
			return
		default:
			c.other = append(c.other, fmt.Sprintf("%v %s", m.Type, m.ErrMsg))
		}
		c.mu.Unlock()
	}
}

func (c *ptyClient) send(m *protocol.Msg) {
	m.TID = c.tid
	if _, err := c.e.srv.Send(context.Background(), c.e.id, m); err != nil {
		c.e.t.Errorf("send %v: %v", m.Type, err)
	}
}

// input types b, waiting for an input credit.
func (c *ptyClient) input(b string) {
	c.e.t.Helper()
	eventually.Within(c.e.t.(*testing.T), 20*time.Second, "an input credit", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.inCredit == 0 {
			return false
		}
		c.inCredit--
		return true
	})
	c.send(&protocol.Msg{Type: protocol.TypePtyInput, Payload: protocol.NewPtyData([]byte(b))})
}

func (c *ptyClient) resize(cols, rows uint16) {
	c.send(&protocol.Msg{Type: protocol.TypePtyResize, Payload: &protocol.PtyResize{Cols: cols, Rows: rows}})
}

// output returns what the terminal printed so far.
func (c *ptyClient) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// expect waits until the output holds s, and returns the output.
func (c *ptyClient) expect(s string) string {
	c.e.t.Helper()
	var out string
	eventually.Within(c.e.t.(*testing.T), 20*time.Second, fmt.Sprintf("output %q", s), func() bool {
		out = c.output()
		return strings.Contains(out, s)
	})
	return out
}

// wait waits for pty_exit.
func (c *ptyClient) wait() *protocol.PtyExit {
	c.e.t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		out := c.output()
		c.e.t.Fatalf("no pty_exit; output so far (tail) %q", out[max(0, len(out)-300):])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.other) > 0 {
		c.e.t.Errorf("unexpected messages: %q", c.other)
	}
	if c.exit == nil {
		c.e.t.Fatal("session ended without pty_exit")
	}
	return c.exit
}

// sessionMembers returns the live processes of session sid.
func sessionMembers(t *testing.T, sid int) []string { return liveProcs(t, statSession, sid) }

// waitProc waits until session sid runs a process named comm.
func waitProc(t *testing.T, sid int, comm string) {
	t.Helper()
	eventually.Within(t, 20*time.Second, comm+" running in the session", func() bool {
		for _, p := range sessionMembers(t, sid) {
			if strings.HasSuffix(p, "("+comm+")") {
				return true
			}
		}
		return false
	})
}

func TestShellEchoAndExitCode(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{Cmd: "sh"}, ptyOpts{})
	c.input("echo h''i\r")
	c.expect("hi\r\n")
	c.input("exit 7\r")
	if x := c.wait(); x.Code != 7 || x.Msg != "" {
		t.Fatalf("pty_exit %+v, want code 7", x)
	}
	// A command's own exit code, and 127 for a missing program.
	for cmd, code := range map[string]int{"exit 3": 3, "no-such-program-xyz": 127, "kill -INT $$": 130} {
		c := e.openShell(protocol.PtyOpen{Cmd: cmd}, ptyOpts{})
		if x := c.wait(); x.Code != code {
			t.Errorf("%s: pty_exit %+v, want code %d", cmd, x, code)
		}
	}
}

func TestShellLogin(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{}, ptyOpts{})
	// $0 of a login shell starts with '-'; the session starts in $HOME
	// and TERM defaults to xterm-256color.
	c.input(`echo "<$0|$(pwd)|$HOME|$TERM>"` + "\r")
	out := c.expect("|xterm-256color>")
	i := strings.LastIndex(out, "<-")
	if i < 0 {
		t.Fatalf("not a login shell: %q", out)
	}
	f := strings.Split(strings.TrimSuffix(out[i+1:strings.LastIndex(out, ">")], ">"), "|")
	if len(f) != 4 || f[1] != f[2] || f[2] == "" {
		t.Errorf("session not in $HOME: %q", f)
	}
	c.input("exit\r")
	if x := c.wait(); x.Code != 0 {
		t.Errorf("pty_exit %+v", x)
	}
}

func TestShellResize(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{Cmd: "sh", Cols: 100, Rows: 30, Env: []string{"PS1=$ "}}, ptyOpts{})
	c.input("stty size\r")
	c.expect("30 100\r\n")
	c.resize(132, 43)
	c.input("stty size\r")
	c.expect("43 132\r\n")
	c.resize(0, 43) // out of range: ignored, the session goes on
	c.input("stty size; exit\r")
	if x := c.wait(); x.Code != 0 || !strings.HasSuffix(c.output(), "43 132\r\n") {
		t.Errorf("pty_exit %+v, output %q", x, c.output())
	}
}

func TestShellCtrlC(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{Cmd: "sh"}, ptyOpts{})
	c.input("sleep 100; echo af''ter\r")
	waitProc(t, c.pid, "sleep")
	c.input("\x03")
	c.input("echo x$((6*7))y\r")
	out := c.expect("x42y")
	if strings.Contains(out, "after") {
		t.Errorf("Ctrl-C did not stop the command line: %q", out)
	}
	c.input("exit\r")
	c.wait()
}

func TestShellUTF8(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{Cmd: `stty -echo; IFS= read -r l; printf '<%s>' "$l"`}, ptyOpts{})
	// 日 (e6 97 a5) split between two messages: raw bytes, not text.
	c.input("h\u00e9llo \u2713 \xe6")
	c.input("\x97\xa5\u672c\r")
	if x := c.wait(); x.Code != 0 {
		t.Fatalf("pty_exit %+v", x)
	}
	if out := c.output(); !strings.Contains(out, "<h\u00e9llo \u2713 \u65e5\u672c>") {
		t.Errorf("output %q", out)
	}
}

// TestShellFloodBounded: a command floods the terminal while the reader
// acks only when the whole window is used. The agent never has more than
// the window unacknowledged, every byte arrives, and the heap stays
// bounded (an agent ignoring credits would queue the flood).
func TestShellFloodBounded(t *testing.T) {
	const total = 16 << 20
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{Cmd: fmt.Sprintf("stty raw -echo; head -c %d /dev/zero | tr '\\000' x", total)}, ptyOpts{window: 4, lazy: true})
	var maxHeap uint64
	var ms runtime.MemStats
	done := false
	for !done {
		select {
		case <-c.done:
			done = true
		case <-time.After(500 * time.Millisecond):
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		maxHeap = max(maxHeap, ms.HeapAlloc)
	}
	x := c.wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if x.Code != 0 || c.outBytes != total {
		t.Fatalf("pty_exit %+v after %d bytes, want code 0 after %d", x, c.outBytes, total)
	}
	if c.maxOut > c.window {
		t.Errorf("%d output messages unacknowledged at once, window %d", c.maxOut, c.window)
	}
	if maxHeap > 12<<20 {
		t.Errorf("heap reached %d MiB while %d MiB went through", maxHeap>>20, total>>20)
	}
	t.Logf("max heap %.1f MiB, %d messages", float64(maxHeap)/(1<<20), c.nmsg)
}

// TestShellSlowClientAfterExit: the command has ended while its output
// still waits for a client that acks late; none of it is lost (the drain
// time counts only reads, not the wait for credit).
func TestShellSlowClientAfterExit(t *testing.T) {
	const total = 8 << 10                   // less than the terminal buffers hold: the command can end
	e := start(t, agenttest.Options{}, nil) // drain time 100 ms
	gate := make(chan struct{})
	c := e.openShell(protocol.PtyOpen{Cmd: fmt.Sprintf("stty raw -echo; head -c %d /dev/zero | tr '\\000' x", total)}, ptyOpts{window: 2, lazy: true, gate: gate})
	eventually.Within(t, 20*time.Second, "the command to end", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", c.pid))
		return os.IsNotExist(err)
	})
	time.Sleep(300 * time.Millisecond) // the client stays slow for 3 × the drain time
	close(gate)
	x := c.wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if x.Code != 0 || c.outBytes != total {
		t.Fatalf("pty_exit %+v after %d bytes, want code 0 after %d", x, c.outBytes, total)
	}
}

func TestShellClose(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{Cmd: "sh"}, ptyOpts{})
	c.input("sleep 100 & sleep 200\r")
	waitProc(t, c.pid, "sleep")
	c.send(&protocol.Msg{Type: protocol.TypePtyClose})
	x := c.wait()
	if x.Msg != msgClosed || x.Code != 128+1 {
		t.Errorf("pty_exit %+v, want code 129 (SIGHUP) and %q", x, msgClosed)
	}
	if left := sessionMembers(t, c.pid); len(left) > 0 {
		t.Errorf("processes left after close: %q", left)
	}
}

func TestShellConnectionLost(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{Cmd: "sh"}, ptyOpts{})
	c.input("sleep 100\r")
	waitProc(t, c.pid, "sleep")
	e.srv.Drop()
	eventually.Within(t, 20*time.Second, "the session's processes to go", func() bool { return len(sessionMembers(t, c.pid)) == 0 })
}

func TestShellIdleTimeout(t *testing.T) {
	e := start(t, agenttest.Options{}, func(c *Config) { c.Exec.ShellIdleTimeout = 300 * time.Millisecond })
	c := e.openShell(protocol.PtyOpen{Cmd: "sh"}, ptyOpts{})
	x := c.wait()
	if x.Msg != "idle timeout: no input or output for 300ms" {
		t.Errorf("pty_exit %+v", x)
	}
}

func TestShellRefused(t *testing.T) {
	e := start(t, agenttest.Options{}, func(c *Config) { c.Exec.MaxTasks = 1 })
	tests := []struct {
		o   protocol.PtyOpen
		msg string
	}{ // all of kind invalid
		{protocol.PtyOpen{Cmd: "sh", Cols: 0, Rows: 24}, "invalid exec request: terminal size 0×24: columns and rows must be 1…4096"},
		{protocol.PtyOpen{Cmd: "sh", Cols: 80, Rows: 5000}, "invalid exec request: terminal size 80×5000: columns and rows must be 1…4096"},
		{protocol.PtyOpen{Cmd: "sh", Cols: 80, Rows: 24, Env: []string{"NOEQUALS"}}, `invalid exec request: env[0] "NOEQUALS": want K=V`},
		{protocol.PtyOpen{Cols: 80, Rows: 24, User: "-root"}, `invalid exec request: user "-root": starts with '-'`},
	}
	for _, tc := range tests {
		tid := e.send(&protocol.Msg{Type: protocol.TypePtyOpen, Payload: &tc.o})
		m := e.await(tid, 20*time.Second)
		if m.Type != protocol.TypePtyOpened || m.PtyOpened().OK || m.PtyOpened().Msg != tc.msg || m.PtyOpened().Kind != protocol.KindInvalid {
			t.Errorf("%+v: %v %+v, want pty_opened{ok:false, msg:%q, kind:invalid}", tc.o, m.Type, m.PtyOpened(), tc.msg)
		}
	}
	// One slot, shared with commands: a second session is busy.
	c := e.openShell(protocol.PtyOpen{Cmd: "sh"}, ptyOpts{})
	_, opened := e.tryOpenShell(protocol.PtyOpen{Cmd: "sh"}, ptyOpts{})
	if opened.OK || opened.Msg != "busy: 1 tasks running, limit 1" || opened.Kind != "" {
		t.Errorf("second session: %+v", opened)
	}
	if r := e.exec(&protocol.Exec{Cmd: "true"}); r.execd.OK || !strings.Contains(r.execd.Msg, "busy") {
		t.Errorf("exec beside a session: %+v", r.execd)
	}
	c.input("exit\r")
	c.wait()
}

// A peer that sends more input than its window, or input that is not
// base64, ends the session with a message saying so.
func TestShellProtocolViolation(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	c := e.openShell(protocol.PtyOpen{Cmd: "stty raw -echo; echo rea''dy; sleep 100"}, ptyOpts{})
	c.expect("ready")
	// sleep reads nothing: in raw mode the terminal's input buffers fill
	// (a few KiB), the writer blocks on them and the queue overflows.
	chunk := protocol.NewPtyData(bytes.Repeat([]byte("y"), protocol.PtyMaxData))
	for range inWindow + 8 {
		c.send(&protocol.Msg{Type: protocol.TypePtyInput, Payload: chunk})
	}
	x := c.wait()
	if x.Msg != "flow control violation: more than 16 pty_input messages unacknowledged" || x.Code != 129 {
		t.Errorf("pty_exit %+v", x)
	}
	c = e.openShell(protocol.PtyOpen{Cmd: "sh"}, ptyOpts{})
	c.send(&protocol.Msg{Type: protocol.TypePtyInput, Payload: &protocol.PtyData{Data: "not base64!"}})
	if x := c.wait(); x.Msg != "protocol violation: pty data: illegal base64 data at input byte 3" {
		t.Errorf("pty_exit %+v", x)
	}
}
