package libagent_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

func TestSelfReport(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	startAgent(t, srv.Addr(), agentSpec{
		basic: libagent.Basic{Monitor: libagent.Monitor{Enabled: true}},
		opts:  libagent.Options{MonitorInterval: 50 * time.Millisecond},
	})
	m, err := srv.AwaitPush(timeout(t, 5*time.Second), protocol.TypeAgentInfo)
	if err != nil {
		t.Fatal(err)
	}
	ai := m.AI()
	if ai.Version != "1.0.0" || !strings.HasPrefix(ai.GoVersion, "go") || ai.Routines == 0 || ai.Threads == 0 || ai.Startup == 0 || ai.HeapInuse == 0 || len(ai.GC) != 5 || ai.OutPackets == 0 {
		t.Errorf("self-report incomplete: %+v", ai)
	}
}

func TestTransfer(t *testing.T) {
	var got []byte
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/a", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "tok" {
			http.Error(w, "bad token", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, "file body")
	})
	mux.HandleFunc("PUT /files/b", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "tok" {
			http.Error(w, "bad token", http.StatusForbidden)
			return
		}
		got, _ = io.ReadAll(r.Body)
	})
	srv := agenttest.New(t, agenttest.Options{HTTP: mux})
	a := startAgent(t, srv.Addr(), agentSpec{})
	ctx := timeout(t, 5*time.Second)
	var buf bytes.Buffer
	n, err := a.rt.Fetch(ctx, "/files/a", "tok", &buf)
	if err != nil || n != 9 || buf.String() != "file body" {
		t.Fatalf("Fetch = %d, %v, %q", n, err, buf.String())
	}
	if err := a.rt.Put(ctx, "/files/b", "tok", strings.NewReader("upload"), 6); err != nil || string(got) != "upload" {
		t.Fatalf("Put: %v, server got %q", err, got)
	}
	for _, tc := range []struct{ uri, token, want string }{
		{"/files/a", "bad", "transfer failed: HTTP 403"},
		{"/nope", "tok", "transfer failed: HTTP 404"},
		{"ftp://x/y", "tok", `scheme "ftp", want http or https`},
	} {
		_, err := a.rt.Fetch(ctx, tc.uri, tc.token, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Fetch(%q, %q) = %v, want %q", tc.uri, tc.token, err, tc.want)
		}
	}
}

// TestConfigFileAndLogHandlers runs an agent from a real config file with
// file logging, lists its log files and downloads them as a zip.
func TestConfigFileAndLogHandlers(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf", "agent.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	text := "basic.server = $TEST_AGENT_SERVER\nbasic.log.target = file\nbasic.log.dir = logs\nbasic.log.level = debug\nbasic.monitor.enabled = false\nbasic.labels = env=test, rack=r1\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_AGENT_SERVER", srv.Addr())
	cfg := &testConfig{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- libagent.Run(ctx, &libagent.Agent{Name: "log-agent", Config: cfg}, libagent.Options{
			ConfigPath: conf, BaseDir: dir, SkipLimits: true,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if ag.Come.Labels["rack"] != "r1" || ag.Come.Labels["env"] != "test" {
		t.Errorf("labels %v", ag.Come.Labels)
	}
	eventually.True(t, "state file next to the config", func() bool {
		_, err := os.Stat(filepath.Join(dir, "conf", "agent.state"))
		return err == nil
	})
	tid, _ := srv.Send(wctx, ag.ID, &protocol.Msg{Type: protocol.TypeLogLsReq})
	rep, err := srv.Await(wctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Type != protocol.TypeLogLsRep || len(rep.LogLs().Files) == 0 || rep.LogLs().Files[0].Name != "log-agent.log" {
		t.Fatalf("log list %+v", rep)
	}

	for _, tc := range []struct{ name, want string }{
		{"../conf/agent.conf", "not a log file of this agent"},
		{"/etc/passwd", "not a log file of this agent"},
		{"other.log", "not a log file of this agent"},
	} {
		tid, _ := srv.Send(wctx, ag.ID, &protocol.Msg{Type: protocol.TypeLogDownloadReq, Payload: &protocol.LogDownloadReq{Files: []string{tc.name}}})
		rep, err := srv.Await(wctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		if rep.LogDInfo() == nil || rep.LogDInfo().OK || !strings.Contains(rep.LogDInfo().Msg, tc.want) {
			t.Errorf("download %q: %+v, want refusal %q", tc.name, rep.LogDInfo(), tc.want)
		}
	}

	tid, _ = srv.Send(wctx, ag.ID, &protocol.Msg{Type: protocol.TypeLogDownloadReq, Payload: &protocol.LogDownloadReq{Files: []string{"log-agent.log"}}})
	info, err := srv.Await(wctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if !info.LogDInfo().OK || info.LogDInfo().Size == 0 {
		t.Fatalf("log_dinfo %+v", info.LogDInfo())
	}
	var zipped []byte
	for uint64(len(zipped)) < info.LogDInfo().Size {
		m, err := srv.Await(wctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != protocol.TypeLogDownloadData || m.LogDData().Offset != uint64(len(zipped)) {
			t.Fatalf("block %v at %d, want log_ddata at %d", m.Type, m.LogDData().Offset, len(zipped))
		}
		b, err := compress.Decode(m.LogDData().Data, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		zipped = append(zipped, b...)
	}
	if md5.Sum(zipped) != [16]byte(info.LogDInfo().MD5) {
		t.Error("md5 mismatch")
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "log-agent.log" {
		t.Fatalf("zip holds %v", zr.File)
	}
	f, _ := zr.File[0].Open()
	body, _ := io.ReadAll(f)
	f.Close()
	if !strings.Contains(string(body), "connected") {
		t.Errorf("zipped log lacks the connect line:\n%s", body)
	}
}

func TestRedirect(t *testing.T) {
	target := agenttest.New(t, agenttest.Options{})
	first := agenttest.New(t, agenttest.Options{})
	first.SetRedirect([]string{"127.0.0.1:1", target.Addr()}) // the first is dead
	startAgent(t, first.Addr(), agentSpec{setup: echo})
	ag, err := target.WaitAgent(timeout(t, 10*time.Second))
	if err != nil {
		t.Fatal("agent did not follow the redirect:", err)
	}
	roundTrip(t, target, ag.ID)
}

// The agent connects to the first server of a redirect list, not back to
// its configured server (which here redirects every time).
func TestRedirectFirstEntry(t *testing.T) {
	target := agenttest.New(t, agenttest.Options{})
	first := agenttest.New(t, agenttest.Options{})
	first.SetRedirect([]string{target.Addr()})
	startAgent(t, first.Addr(), agentSpec{setup: echo})
	ag, err := target.WaitAgent(timeout(t, 10*time.Second))
	if err != nil {
		t.Fatal("agent did not follow the redirect:", err)
	}
	roundTrip(t, target, ag.ID)
}

func TestBusyTimeoutAndCancel(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	block := make(chan struct{})
	a := startAgent(t, srv.Addr(), agentSpec{
		opts: libagent.Options{Workers: 1},
		setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				select {
				case <-block:
					return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeBar})
				case <-ctx.Done():
					return fmt.Errorf("foo stopped: %w", ctx.Err())
				}
			})
			rt.Handle(protocol.TypeLsReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				<-ctx.Done()
				return ctx.Err()
			}, libagent.WithTimeout(50*time.Millisecond))
			return nil
		},
	})
	ctx, ag := a.connected(t, srv, 10*time.Second)
	first, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
	// The single worker is taken: the next request is refused at once.
	var busy *protocol.Msg
	eventually.True(t, "a busy refusal", func() bool {
		tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
		rep, err := srv.Await(ctx, tid)
		busy = rep
		return err == nil && rep.Type == protocol.TypeError && strings.Contains(rep.ErrMsg, "agent busy")
	})
	if busy == nil {
		t.Fatal("no busy reply")
	}
	// Kill by tid cancels the handler's context; its error is the reply.
	if !a.rt.Cancel(first) {
		t.Fatal("Cancel found no running task")
	}
	rep, err := srv.Await(ctx, first)
	if err != nil || rep.Type != protocol.TypeError || !strings.Contains(rep.ErrMsg, "foo stopped: context canceled") {
		t.Fatalf("cancelled task answered %+v, %v", rep, err)
	}
	// A handler timeout ends in an error reply too (once the worker is free).
	eventually.True(t, "the worker to be free", func() bool { return !a.rt.Cancel(first) })
	tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: "/"}})
	rep, err = srv.Await(ctx, tid)
	if err != nil || rep.Type != protocol.TypeError || !strings.Contains(rep.ErrMsg, "deadline exceeded") {
		t.Fatalf("timed-out task answered %+v, %v", rep, err)
	}
	close(block)
}

// TestJournalFullBlocksThenDrains: while disconnected, reliable replies
// fill the bounded journal and the producer blocks; after the reconnect
// everything arrives once, in order.
func TestJournalFullBlocksThenDrains(t *testing.T) {
	const n = 40
	srv := agenttest.New(t, agenttest.Options{})
	var produced atomic.Int64
	release, started := make(chan struct{}), make(chan struct{})
	a := startAgent(t, srv.Addr(), agentSpec{
		opts:  libagent.Options{JournalMax: 2048},
		setup: gatedProducer(n, 60, started, release, &produced),
	})
	ctx, ag := a.connected(t, srv, 15*time.Second)
	tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "x"}})
	<-started
	srv.Stop()
	eventually.True(t, "the agent to notice the stop", func() bool { return !a.rt.Connected() })
	close(release)
	// 2 KiB hold about 20 of these records: the producer must stall.
	eventually.True(t, "the producer to stall", func() bool {
		p := produced.Load()
		time.Sleep(50 * time.Millisecond)
		return p > 0 && p == produced.Load()
	})
	if p := produced.Load(); p >= n {
		t.Fatalf("produced all %d replies into a 2 KiB journal while disconnected", p)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range n {
		m, err := srv.Await(ctx, tid)
		if err != nil {
			t.Fatalf("reply %d: %v (produced %d)", i, err, produced.Load())
		}
		if want := fmt.Sprintf("%03d", i); m.ExecData() == nil || !strings.HasPrefix(m.ExecData().Data, want) || m.Seq <= last {
			t.Fatalf("reply %d: %+v seq %d after %d", i, m.ExecData(), m.Seq, last)
		}
		last = m.Seq
	}
	if d := srv.Duplicates(); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

func TestWSSWithCA(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blob", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "over https") })
	srv := agenttest.New(t, agenttest.Options{TLS: true, HTTP: mux})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  libagent.TLS
		ok   bool
	}{
		{"ca", libagent.TLS{CA: ca}, true},
		{"insecure", libagent.TLS{InsecureSkipVerify: true}, true},
		{"system roots", libagent.TLS{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := libagent.DefaultBasic()
			b.Server, b.TLS = srv.URL(), tc.tls
			before := srv.Accepted()
			a := startAgent(t, "", agentSpec{basic: b})
			if !tc.ok {
				time.Sleep(300 * time.Millisecond) // several dial attempts (backoff ≤ 100 ms)
				if srv.Accepted() != before || a.rt.Connected() {
					t.Fatal("agent accepted a server it cannot verify")
				}
				return
			}
			if err := srv.WaitAccepted(timeout(t, 5*time.Second), before+1); err != nil {
				t.Fatal(err)
			}
			eventually.True(t, "connected", a.rt.Connected)
			var buf bytes.Buffer
			if _, err := a.rt.Fetch(timeout(t, 5*time.Second), "/blob", "", &buf); err != nil || buf.String() != "over https" {
				t.Fatalf("Fetch over https: %q, %v", buf.String(), err)
			}
			a.stop(t)
		})
	}
}

// A handler's error goes out with its kind (protocol.KindOf) to a server
// that speaks errkind.v1, and as the plain v1 type 0 to one that does not.
func TestHandlerErrorKind(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "errkind.v1", true: "v1"}[v1], func(t *testing.T) {
			srv := agenttest.New(t, agenttest.Options{V1: v1})
			missing := filepath.Join(t.TempDir(), "nope")
			startAgent(t, srv.Addr(), agentSpec{setup: func(rt *libagent.Runtime) error {
				rt.Handle(protocol.TypeLsReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
					_, err := os.ReadDir(missing)
					return err
				})
				rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
					return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeExecd, Payload: &protocol.Execd{Msg: "m", Kind: protocol.KindDenied}})
				})
				return nil
			}})
			ctx := timeout(t, 10*time.Second)
			ag, err := srv.WaitAgent(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantKind := map[bool]protocol.ErrKind{false: protocol.KindNotFound, true: ""}[v1]
			tid, err := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: missing}})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := srv.Await(ctx, tid)
			if err != nil || rep.Type != protocol.TypeError || rep.ErrMsg != "open "+missing+": no such file or directory" || rep.ErrKind != wantKind {
				t.Fatalf("reply %v %+v, want type 0 with kind %q", err, rep, wantKind)
			}
			wantKind = map[bool]protocol.ErrKind{false: protocol.KindDenied, true: ""}[v1]
			if tid, err = srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo}); err != nil {
				t.Fatal(err)
			}
			rep, err = srv.Await(ctx, tid)
			if err != nil || rep.Type != protocol.TypeExecd || rep.Execd().Kind != wantKind {
				t.Fatalf("reply %v %+v, want execd with kind %q", err, rep, wantKind)
			}
		})
	}
}

// TestInlineAndConnScoped: inline handlers see their messages in arrival
// order (the worker pool does not keep it); a connection-scoped handler's
// context ends with the connection its request came on.
func TestInlineAndConnScoped(t *testing.T) {
	const n = 300
	srv := agenttest.New(t, agenttest.Options{})
	var mu sync.Mutex
	var got []string
	scoped := make(chan error, 1)
	a := startAgent(t, srv.Addr(), agentSpec{
		setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypePtyInput, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				mu.Lock()
				got = append(got, req.PtyData().Data)
				mu.Unlock()
				return nil
			}, libagent.Inline())
			rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				if err := w.Reply(ctx, &protocol.Msg{Type: protocol.TypeBar}); err != nil {
					return err
				}
				<-ctx.Done()
				scoped <- ctx.Err()
				return nil
			}, libagent.ConnScoped())
			return nil
		},
	})
	ctx, ag := a.connected(t, srv, 10*time.Second)
	var want []string
	for i := range n {
		d := protocol.NewPtyData(fmt.Appendf(nil, "%d", i)).Data
		want = append(want, d)
		if _, err := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypePtyInput, TID: "p", Payload: &protocol.PtyData{Data: d}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, "every input", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n })
	mu.Lock()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("input %d is %q, want %q: order lost", i, got[i], want[i])
		}
	}
	mu.Unlock()

	tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
	if rep, err := srv.Await(ctx, tid); err != nil || rep.Type != protocol.TypeBar {
		t.Fatalf("foo: %+v, %v", rep, err)
	}
	select {
	case err := <-scoped:
		t.Fatalf("scoped handler ended before the connection did: %v", err)
	default:
	}
	srv.Drop()
	select {
	case err := <-scoped:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("scoped handler's context ended with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("dropping the connection did not cancel the scoped handler")
	}
}

// gatedProducer handles one exec by waiting for release (after closing
// started), then sending n reliable exec_data replies of pad+3 bytes each,
// counting in produced those the journal took.
func gatedProducer(n, pad int, started, release chan struct{}, produced *atomic.Int64) func(*libagent.Runtime) error {
	return func(rt *libagent.Runtime) error {
		rt.Handle(protocol.TypeExec, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			close(started)
			<-release
			for i := range n {
				m := &protocol.Msg{Type: protocol.TypeExecData, Payload: &protocol.ExecData{Data: fmt.Sprintf("%03d%s", i, strings.Repeat(".", pad))}}
				if err := w.ReplyReliable(ctx, m); err != nil {
					return err
				}
				produced.Add(1)
			}
			return nil
		})
		return nil
	}
}
