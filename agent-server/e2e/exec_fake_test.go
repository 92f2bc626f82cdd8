package e2e

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

// fakeExec is a simulated exec-agent speaking the real protocol over a
// real WebSocket: exec (a tiny command language, below), kill, ps, ls,
// upload (inline or by URL) and download (v1 blocks or bulk.v1 PUT), with
// an ack.v1 journal it replays after a reconnect. It always enrols with
// auth.v1 and keeps the secret it is issued (the servers of these tests
// refuse v1 sessions, allow_legacy_agents being off): caps names the
// extensions that change how it executes and moves files.
//
// Commands: "true"; "echo X" (X + "\n"); "exit N"; "seq N" (lines 1..N);
// "bytes N" (N bytes of 'x'); "sleep" (until killed or its timeout: 137);
// "hold" (execd + "before\n", then waits for finish()); "nostart";
// "legacy-kill" (exit code -1); "sh"/"bash" (echoes the uploaded script
// named by its first arg).
type fakeExec struct {
	t       testing.TB
	addr    string
	id      string
	name    string // come.name: "exec-agent" unless made by newFakeLogAgent
	caps    []string
	journal string
	secret  string // issued at the first handshake (auth.v1)

	mu      sync.Mutex
	conn    *websocket.Conn
	seq     uint64
	unacked []*protocol.Msg // journaled, not acked
	acked   uint64
	files   map[string][]byte // path → content
	dirs    map[string][]protocol.FileInfo
	running map[string]*fakeTask // by tid
	pid     int
	badMD5  bool // v1 downloads announce a wrong MD5
	execs   []*protocol.Exec
	uploads []*protocol.Upload
	logAcks []*protocol.LogAck
	onUp    func(up *protocol.Upload) // called before fetching by URL
	wg      sync.WaitGroup
	readers sync.WaitGroup
	http    *http.Client
}

type fakeTask struct {
	tid  string
	pid  int
	t    time.Time
	kill chan struct{}
	hold chan struct{}
	once sync.Once
}

func (k *fakeTask) stop() { k.once.Do(func() { close(k.kill) }) }

func newFakeExec(t testing.TB, addr, id string, caps ...string) *fakeExec {
	t.Helper()
	return startFake(t, addr, id, "exec-agent", caps...)
}

// newFakeLogAgent is the fake as a log-agent (log.v1): it runs execs like
// the exec fake, keeps the log_acks it gets and sends only what a test
// makes it send (no log_status of its own).
func newFakeLogAgent(t testing.TB, addr, id string) *fakeExec {
	t.Helper()
	return startFake(t, addr, id, "log-agent", protocol.CapLog)
}

func startFake(t testing.TB, addr, id, name string, caps ...string) *fakeExec {
	t.Helper()
	fa := &fakeExec{t: t, addr: addr, id: id, name: name, caps: caps, journal: "0123456789abcdef",
		files: map[string][]byte{}, dirs: map[string][]protocol.FileInfo{}, running: map[string]*fakeTask{}, pid: 1000,
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}}
	fa.connect()
	t.Cleanup(fa.close)
	return fa
}

func (fa *fakeExec) has(c string) bool { return protocol.HasCap(fa.caps, c) }

// connect dials, handshakes and replays the unacked journal.
func (fa *fakeExec) connect() {
	t := fa.t
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+agentToken)
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+fa.addr+"/ws/agent", h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	caps := append([]string{protocol.CapAuth}, fa.caps...)
	come := &protocol.Come{ID: fa.id, Name: fa.name, Version: "1.2.3", OS: "linux", Caps: caps, Secret: fa.secret}
	if fa.has(protocol.CapAck) {
		come.Journal = fa.journal
	}
	b, _ := protocol.Encode(&protocol.Msg{Type: protocol.TypeCome, Payload: come})
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	m, err := protocol.Decode(data)
	if err != nil || m.Handshake() == nil || !m.Handshake().OK {
		t.Fatalf("handshake: %v %s", err, data)
	}
	fa.mu.Lock()
	fa.conn = c
	if m.Handshake().Secret != "" {
		fa.secret = m.Handshake().Secret
	}
	// Replay what the server does not hold yet, in order, before anything new.
	var keep []*protocol.Msg
	for _, j := range fa.unacked {
		if j.Seq > m.Handshake().Ack {
			keep = append(keep, j)
			fa.writeLocked(j)
		}
	}
	fa.unacked = keep
	fa.mu.Unlock()
	fa.readers.Add(1)
	go fa.read(c)
}

// drop cuts the connection (the agent keeps running its tasks).
func (fa *fakeExec) drop() {
	fa.mu.Lock()
	c := fa.conn
	fa.conn = nil
	fa.mu.Unlock()
	if c != nil {
		c.Close()
	}
	fa.readers.Wait()
}

func (fa *fakeExec) close() {
	fa.mu.Lock()
	for _, k := range fa.running {
		k.stop()
	}
	fa.mu.Unlock()
	fa.drop()
	fa.wg.Wait()
}

func (fa *fakeExec) writeLocked(m *protocol.Msg) {
	if fa.conn == nil {
		return
	}
	b, err := protocol.Encode(m)
	if err != nil {
		fa.t.Errorf("encode: %v", err)
		return
	}
	_ = fa.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = fa.conn.WriteMessage(websocket.TextMessage, b)
}

// send writes m; journaled types get a seq and are kept until acked when
// ack.v1 is in use (also while disconnected).
func (fa *fakeExec) send(m *protocol.Msg) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if fa.has(protocol.CapAck) && m.Type.Journaled() {
		fa.seq++
		m.Seq = fa.seq
		fa.unacked = append(fa.unacked, m)
	}
	fa.writeLocked(m)
}

func (fa *fakeExec) read(c *websocket.Conn) {
	defer fa.readers.Done()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		m, err := protocol.Decode(data)
		if err != nil {
			fa.t.Errorf("decode %s: %v", data, err)
			return
		}
		fa.handle(m)
	}
}

func (fa *fakeExec) handle(m *protocol.Msg) {
	reply := func(r *protocol.Msg) { r.TID = m.TID; fa.send(r) }
	switch m.Type {
	case protocol.TypeAck:
		fa.mu.Lock()
		fa.acked = m.Ack().Seq
		var keep []*protocol.Msg
		for _, j := range fa.unacked {
			if j.Seq > m.Ack().Seq {
				keep = append(keep, j)
			}
		}
		fa.unacked = keep
		fa.mu.Unlock()
	case protocol.TypeExec:
		fa.mu.Lock()
		fa.execs = append(fa.execs, m.Exec())
		fa.mu.Unlock()
		fa.wg.Add(1)
		go func() { defer fa.wg.Done(); fa.exec(m.TID, m.Exec()) }()
	case protocol.TypeExecKill:
		fa.mu.Lock()
		var found *fakeTask
		for _, k := range fa.running {
			if (m.ExecKill().TaskID == "" || k.tid == m.ExecKill().TaskID) && (m.ExecKill().Pid == 0 || k.pid == m.ExecKill().Pid) {
				found = k
			}
		}
		fa.mu.Unlock()
		if found != nil {
			found.stop()
		}
		if m.TID != "" && fa.has(protocol.CapStream) {
			r := &protocol.ExecKillRep{OK: found != nil, TaskID: m.ExecKill().TaskID}
			if found == nil {
				r.Msg = protocol.MsgNoSuchTask
			} else {
				r.Pid = found.pid
			}
			reply(&protocol.Msg{Type: protocol.TypeExecKillRep, Payload: r})
		}
	case protocol.TypePsReq:
		fa.mu.Lock()
		tasks := []protocol.PsTask{}
		for _, k := range fa.running {
			tasks = append(tasks, protocol.PsTask{TaskID: k.tid, Pid: k.pid, Begin: k.t})
		}
		fa.mu.Unlock()
		reply(&protocol.Msg{Type: protocol.TypePsRep, Payload: &protocol.Ps{Tasks: tasks}})
	case protocol.TypeLsReq:
		fa.mu.Lock()
		files, ok := fa.dirs[m.LsReq().Dir]
		fa.mu.Unlock()
		if !ok {
			reply(&protocol.Msg{Type: protocol.TypeLsRep, Payload: &protocol.LsRep{Dir: m.LsReq().Dir, Msg: "open " + m.LsReq().Dir + ": no such file or directory"}})
			return
		}
		reply(&protocol.Msg{Type: protocol.TypeLsRep, Payload: &protocol.LsRep{Dir: m.LsReq().Dir, OK: true, Files: files}})
	case protocol.TypeUpload:
		fa.wg.Add(1)
		go func() { defer fa.wg.Done(); reply(fa.upload(m.Upload())) }()
	case protocol.TypeDownloadReq:
		fa.wg.Add(1)
		go func() { defer fa.wg.Done(); fa.download(m.TID, m.DownloadReq()) }()
	case protocol.TypeLogAck:
		var a protocol.LogAck
		if err := m.GetExtra(protocol.KeyLogAck, &a); err != nil {
			fa.t.Errorf("log_ack: %v", err)
			return
		}
		fa.mu.Lock()
		fa.logAcks = append(fa.logAcks, &a)
		fa.mu.Unlock()
	case protocol.TypeLogConfig:
		// A log-agent applies it; this fake only takes it.
	default:
		if m.TID != "" {
			reply(protocol.Unsupported(m))
		}
	}
}

func (fa *fakeExec) exec(tid string, x *protocol.Exec) {
	data := func(b []byte) {
		fa.send(&protocol.Msg{Type: protocol.TypeExecData, TID: tid, Payload: &protocol.ExecData{Data: base64.StdEncoding.EncodeToString(b)}})
	}
	done := func(code int) {
		fa.send(&protocol.Msg{Type: protocol.TypeExecDone, TID: tid, Payload: &protocol.ExecDone{Code: code, Time: time.Now()}})
	}
	verb, arg, _ := strings.Cut(x.Cmd, " ")
	if verb == "nostart" {
		fa.send(&protocol.Msg{Type: protocol.TypeExecd, TID: tid, Payload: &protocol.Execd{Msg: "exec: \"nostart\": executable file not found in $PATH", Time: time.Now()}})
		return
	}
	fa.mu.Lock()
	fa.pid++
	k := &fakeTask{tid: tid, pid: fa.pid, t: time.Now(), kill: make(chan struct{}), hold: make(chan struct{})}
	fa.running[tid] = k
	fa.mu.Unlock()
	defer func() {
		fa.mu.Lock()
		delete(fa.running, tid)
		fa.mu.Unlock()
	}()
	fa.send(&protocol.Msg{Type: protocol.TypeExecd, TID: tid, Payload: &protocol.Execd{OK: true, Pid: k.pid, Time: k.t}})
	n, _ := strconv.Atoi(arg)
	switch verb {
	case "true":
		done(0)
	case "echo":
		data([]byte(arg + "\n"))
		done(0)
	case "exit":
		done(n)
	case "legacy-kill":
		done(-1)
	case "seq":
		var buf []byte
		for i := 1; i <= n; i++ {
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, '\n')
			if len(buf) >= 32<<10-16 {
				data(buf)
				buf = nil
			}
		}
		if len(buf) > 0 {
			data(buf)
		}
		done(0)
	case "bytes":
		data(bytes.Repeat([]byte("x"), n))
		done(0)
	case "sleep":
		select {
		case <-k.kill:
		case <-time.After(time.Duration(x.Timeout) * time.Second):
		}
		done(137)
	case "hold":
		data([]byte("before\n"))
		select {
		case <-k.hold:
			data([]byte("after\n"))
			done(0)
		case <-k.kill:
			done(137)
		}
	case "sh", "bash":
		fa.mu.Lock()
		script := fa.files[x.Args[0]]
		fa.mu.Unlock()
		if x.DeferRM != x.Args[0] {
			data([]byte("drm " + x.DeferRM + " is not the script " + x.Args[0]))
			done(2)
			return
		}
		data(script)
		done(0)
	default:
		data([]byte(x.Cmd + ": command not found\n"))
		done(127)
	}
}

// finish lets a "hold" task end.
func (fa *fakeExec) finish(tid string) {
	fa.mu.Lock()
	k := fa.running[tid]
	fa.mu.Unlock()
	if k == nil {
		fa.t.Fatalf("no running task %s", tid)
	}
	close(k.hold)
}

func (fa *fakeExec) upload(up *protocol.Upload) *protocol.Msg {
	fa.mu.Lock()
	fa.uploads = append(fa.uploads, up)
	onUp := fa.onUp
	fa.mu.Unlock()
	fail := func(msg string) *protocol.Msg {
		return &protocol.Msg{Type: protocol.TypeUploadRep, Payload: &protocol.UploadRep{Msg: msg}}
	}
	var b []byte
	if up.URI != "" {
		if onUp != nil {
			onUp(up)
		}
		req, _ := http.NewRequest("GET", "http://"+fa.addr+up.URI, nil)
		req.Header.Set(protocol.TokenHeader, up.Token)
		resp, err := fa.http.Do(req)
		if err != nil {
			return fail(err.Error())
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fail("fetch: " + resp.Status)
		}
		if b, err = io.ReadAll(resp.Body); err != nil {
			return fail(err.Error())
		}
	} else {
		var err error
		if b, err = compress.Decode(up.Data, protocol.MaxInlineUpload); err != nil {
			return fail(err.Error())
		}
	}
	if up.MD5Check && md5.Sum(b) != up.MD5 {
		return fail("md5 mismatch")
	}
	dir := up.Dir
	if dir == protocol.UploadTmpDir {
		dir = "/tmp"
	}
	full := dir + "/" + up.Name
	fa.mu.Lock()
	fa.files[full] = b
	fa.mu.Unlock()
	return &protocol.Msg{Type: protocol.TypeUploadRep, Payload: &protocol.UploadRep{Dir: full, OK: true}}
}

func (fa *fakeExec) download(tid string, d *protocol.DownloadReq) {
	send := func(m *protocol.Msg) { m.TID = tid; fa.send(m) }
	fa.mu.Lock()
	b, ok := fa.files[d.Dir]
	bad := fa.badMD5
	fa.mu.Unlock()
	if !ok {
		send(&protocol.Msg{Type: protocol.TypeDownloadRep, Payload: &protocol.DownloadRep{Dir: d.Dir, Msg: "open " + d.Dir + ": no such file or directory"}})
		return
	}
	if d.URI != "" {
		if d.Offset > uint64(len(b)) {
			send(&protocol.Msg{Type: protocol.TypeDownloadRep, Payload: &protocol.DownloadRep{Dir: d.Dir, Msg: "offset beyond the end"}})
			return
		}
		part := b[d.Offset:]
		if d.Length > 0 && d.Length < uint64(len(part)) {
			part = part[:d.Length]
		}
		req, _ := http.NewRequest("PUT", "http://"+fa.addr+d.URI, bytes.NewReader(part))
		req.Header.Set(protocol.TokenHeader, d.Token)
		resp, err := fa.http.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			msg := fmt.Sprint(err)
			if resp != nil {
				msg = resp.Status
				resp.Body.Close()
			}
			send(&protocol.Msg{Type: protocol.TypeDownloadRep, Payload: &protocol.DownloadRep{Dir: d.Dir, Msg: "upload to server: " + msg}})
			return
		}
		resp.Body.Close()
		sum := md5.Sum(part)
		if bad {
			sum[0]++
		}
		send(&protocol.Msg{Type: protocol.TypeDownloadRep, Payload: &protocol.DownloadRep{Dir: d.Dir, OK: true, Size: uint64(len(part)), MD5: sum, Total: uint64(len(b))}})
		return
	}
	sum := md5.Sum(b)
	if bad {
		sum[0]++
	}
	send(&protocol.Msg{Type: protocol.TypeDownloadRep, Payload: &protocol.DownloadRep{Dir: d.Dir, OK: true, Size: uint64(len(b)), BlockSize: protocol.DefaultBlockSize, MD5: sum}})
	for off := 0; off < len(b); off += protocol.DefaultBlockSize {
		end := min(off+protocol.DefaultBlockSize, len(b))
		send(&protocol.Msg{Type: protocol.TypeDownloadData, Payload: &protocol.DownloadData{Offset: uint64(off), Data: compress.Encode(b[off:end])}})
	}
}

// waitUnacked waits until the server acked everything sent.
func (fa *fakeExec) waitAcked() {
	eventually.Within(fa.t.(*testing.T), 5*time.Second, "acks", func() bool {
		fa.mu.Lock()
		defer fa.mu.Unlock()
		return len(fa.unacked) == 0
	})
}

// cacheEmpty checks that no spooled file is left in the cache dir.
func cacheEmpty(t *testing.T, dir string) {
	t.Helper()
	eventually.Within(t, 30*time.Second, "empty cache dir", func() bool {
		es, err := os.ReadDir(dir)
		return err == nil && len(es) == 0
	})
}
