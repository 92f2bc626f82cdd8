package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/api"
	"github.com/agentfleet/agent-server/internal/natstest"
	"github.com/agentfleet/agent-server/servertest"
)

// binMember runs the agent-server binary bin as member id of cluster name
// (a 3 s lease), on the MariaDB database dsn and the NATS at natsURL, and
// returns the tests' view of it. The process stops at the end of the test.
func binMember(t *testing.T, bin, dsn, natsURL, name, id string) (*testServer, *servertest.Server) {
	t.Helper()
	port, err := servertest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := servertest.Start(t, servertest.Options{Binary: bin, Port: port, LogLevel: "info", Conf: map[string]string{
		"id": id, "store.driver": "mysql", "store.dsn": dsn,
		"cluster.name": name, "cluster.member": id, "cluster.nats_url": natsURL,
		"cluster.advertise": "http://" + addr, "cluster.lease": "3s",
	}})
	ts := &testServer{t: t, url: s.URL, addr: s.Addr, token: opToken,
		client: &http.Client{Timeout: clientTimeout, Transport: &http.Transport{}}}
	t.Cleanup(ts.client.CloseIdleConnections)
	return ts, s
}

// TestClusterBinaryForwarding: three agent-server processes on one MariaDB
// database and one NATS, a real exec-agent connected to as1. Through as2
// (and as3) the agent is listed online at as1; a command, a file download
// and refused calls get the same status and body as through as1, an upload
// and an interactive shell work; the
// forwarded command is audited once; once as1 is killed, calls through
// as2 get 503 with Retry-After (as1's lease still runs) and then 404.
func TestClusterBinaryForwarding(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	dir := t.TempDir()
	serverBin, err := servertest.Build(dir, "agent-server")
	if err != nil {
		t.Fatal(err)
	}
	execBin := buildAgent(t, dir, "exec-agent")
	name := "bin-" + utils.RandomHex(4)

	a, aProc := binMember(t, serverBin, dsn, natsURL, name, "as1")
	b, _ := binMember(t, serverBin, dsn, natsURL, name, "as2")
	c, _ := binMember(t, serverBin, dsn, natsURL, name, "as3")
	for _, ts := range []*testServer{a, b, c} {
		eventually.NoError(t, "three live members", func() error {
			v, err := clusterInfo(ts, opToken)
			if err != nil {
				return err
			}
			if len(v.Members) != 3 || slices.ContainsFunc(v.Members, func(m api.ClusterMember) bool { return m.State != "live" }) {
				return fmt.Errorf("%+v", v.Members)
			}
			return nil
		})
	}

	startBinAgent(t, a, execBin, "cx1", "")
	for _, ts := range []*testServer{b, c} {
		eventually.NoError(t, "cx1 listed online at as1", func() error {
			list := memberAgents(t, ts, "online=true")
			if i := slices.IndexFunc(list, func(x memberAgent) bool { return x.ID == "cx1" }); i < 0 || list[i].Member != "as1" {
				return fmt.Errorf("%+v", list)
			}
			return nil
		})
	}

	// A command: the same status and body through as2 as through as1.
	run := func(ts *testServer, reqID string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", ts.url+"/api/exec/cx1/run", strings.NewReader(`{"cmd":"echo hi"}`))
		req.Header.Set("Authorization", "Bearer "+opToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", reqID)
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct {
			Code    int            `json:"code"`
			Payload map[string]any `json:"payload"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != reqID {
			t.Errorf("request id %q, want %q once", got, reqID)
		}
		// The same shape: every field there, the values of those that
		// differ between two runs (ids, times) left out.
		for _, k := range []string{"id", "pid", "begin", "begin_at"} {
			if _, ok := env.Payload[k]; ok {
				env.Payload[k] = "(set)"
			}
		}
		if res, ok := env.Payload["result"].(map[string]any); ok {
			for _, k := range []string{"end", "end_at"} {
				if _, ok := res[k]; ok {
					res[k] = "(set)"
				}
			}
		}
		return resp.StatusCode, env.Payload
	}
	reqID := "bin-fwd-" + utils.RandomHex(4)
	st1, p1 := run(a, "bin-direct-"+utils.RandomHex(4))
	st2, p2 := run(b, reqID)
	if st1 != 200 || st2 != 200 || fmt.Sprint(p1) != fmt.Sprint(p2) || !strings.Contains(fmt.Sprint(p2["result"]), "state:ok") {
		t.Errorf("echo hi: through as1 %d %v, through as2 %d %v", st1, p1, st2, p2)
	}

	// Refused calls: the same status and message.
	for _, cs := range []struct {
		name, method, path, token string
		status                    int
	}{
		{"no token", "POST", "/api/exec/cx1/run", "", 401},
		{"wrong token", "POST", "/api/exec/cx1/run", "not-a-token-0123456789", 401},
		{"read-only token", "POST", "/api/exec/cx1/run", roToken, 403},
		{"missing file", "GET", "/api/file/cx1/download?dir=" + url.QueryEscape(filepath.Join(dir, "nothing")), opToken, 404},
	} {
		direct := a.do(cs.method, cs.path, cs.token, strings.NewReader(`{"cmd":"echo hi"}`))
		fwd := b.do(cs.method, cs.path, cs.token, strings.NewReader(`{"cmd":"echo hi"}`))
		if direct.status != cs.status || fwd.status != cs.status || direct.Msg != fwd.Msg ||
			direct.header.Get("WWW-Authenticate") != fwd.header.Get("WWW-Authenticate") {
			t.Errorf("%s: through as1 %d %q, through as2 %d %q", cs.name, direct.status, direct.Msg, fwd.status, fwd.Msg)
		}
	}

	// A file download streams through as2: the same bytes and headers.
	file := filepath.Join(dir, "big.bin")
	data := make([]byte, 24<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	download := func(ts *testServer) (http.Header, string, int64) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.url+"/api/file/cx1/download?dir="+url.QueryEscape(file), nil)
		req.Header.Set("Authorization", "Bearer "+opToken)
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("download through %s: %d %s", ts.url, resp.StatusCode, b)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header, hex.EncodeToString(h.Sum(nil)), n
	}
	h1, sum1, n1 := download(a)
	h2, sum2, n2 := download(b)
	if sum1 != hex.EncodeToString(want[:]) || sum2 != sum1 || n1 != n2 || n2 != int64(len(data)) {
		t.Errorf("download: through as1 %d bytes %s, through as2 %d bytes %s", n1, sum1, n2, sum2)
	}
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Disposition"} {
		if h1.Get(k) != h2.Get(k) {
			t.Errorf("download header %s: through as1 %q, through as2 %q", k, h1.Get(k), h2.Get(k))
		}
	}

	// An upload through as2 (its body streamed on to as1) lands as sent.
	up := data[:6<<20]
	upDir := filepath.Join(dir, "up")
	if err := os.MkdirAll(upDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if e := b.multipartBytes("/api/file/cx1/upload", map[string]string{"dir": upDir}, "up.bin", up); e.status != 200 {
		t.Errorf("upload through as2: %d %s", e.status, e.body)
	} else if got, err := os.ReadFile(filepath.Join(upDir, "up.bin")); err != nil || !bytes.Equal(got, up) {
		t.Errorf("uploaded file: %d bytes (%v), want %d", len(got), err, len(up))
	}

	// An interactive shell through as2 (the WebSocket relayed), with the
	// token in the header and, as browsers send it, in a subprotocol.
	for _, auth := range []string{"header", "subprotocol"} {
		hdr, protos := http.Header{}, []string{api.ShellProtocol}
		if auth == "header" {
			hdr.Set("Authorization", "Bearer "+opToken)
		} else {
			protos = append(protos, "bearer."+opToken)
		}
		d := websocket.Dialer{HandshakeTimeout: 20 * time.Second, Subprotocols: protos}
		ws, resp, err := d.Dial("ws://"+b.addr+"/api/exec/cx1/shell?cmd=sh", hdr)
		if err != nil {
			t.Fatalf("shell through as2 (%s): %v %v", auth, err, resp)
		}
		if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != api.ShellProtocol {
			t.Errorf("shell (%s): subprotocol %q", auth, p)
		}
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte("echo fwd-$((6*7))\r")); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		exit := -1
		_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
		for exit < 0 {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("shell (%s): %v after %q", auth, err, out.String())
			}
			if typ == websocket.BinaryMessage {
				out.Write(msg)
				if strings.Contains(out.String(), "fwd-42") && !strings.Contains(out.String(), "exit 3") {
					_ = ws.WriteMessage(websocket.BinaryMessage, []byte("exit 3\r"))
				}
				continue
			}
			var f struct {
				Type string `json:"type"`
				Code int    `json:"code"`
			}
			if json.Unmarshal(msg, &f) == nil && f.Type == "exit" {
				exit = f.Code
			}
		}
		ws.Close()
		if exit != 3 || !strings.Contains(out.String(), "fwd-42") {
			t.Errorf("shell (%s): exit %d, output %q", auth, exit, out.String())
		}
	}

	// One audit entry for the forwarded command, written by as1.
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var remote string
	if err := db.QueryRow("SELECT COUNT(*), COALESCE(MAX(remote), '') FROM audit WHERE request_id = ?", reqID).Scan(&n, &remote); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !strings.Contains(remote, "forwarded by member as2") {
		t.Errorf("audit entries of the forwarded command: %d (remote %q), want 1", n, remote)
	}

	// as1 killed: its lease runs for up to 3 s, during which as2 cannot
	// reach the agent's member (503, retry); then the agent is offline.
	aProc.Kill()
	eventually.NoError(t, "cx1 not connected, through as2", func() error {
		e := b.do("POST", "/api/exec/cx1/run", opToken, bytes.NewReader([]byte(`{"cmd":"echo hi"}`)))
		switch {
		case e.status == 503 && e.header.Get("Retry-After") != "":
			return fmt.Errorf("still retry: %s", e.Msg)
		case e.status == 404:
			return nil
		}
		t.Errorf("through as2 with as1 killed: %d %q (Retry-After %q)", e.status, e.Msg, e.header.Get("Retry-After"))
		return nil
	})
	eventually.Within(t, 30*time.Second, "cx1 offline at as3", func() bool {
		list := memberAgents(t, c, "online=false")
		return slices.ContainsFunc(list, func(x memberAgent) bool { return x.ID == "cx1" && x.Member == "" })
	})
}
