package e2e

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/internal/testserver"

	"github.com/agentfleet/jkframe/eventually"
)

// BenchmarkExecRoundTrip: POST /api/exec/{id}/run {"cmd":"true"} waiting
// for the result, against a simulated agent (SQLite store); reports the
// median.
func BenchmarkExecRoundTrip(b *testing.B) {
	benchMedian(b, "POST", "/api/exec/x1/run", []byte(`{"cmd":"true"}`))
}

// BenchmarkExecPs: GET /api/exec/{id}/ps, a read that reaches the agent
// (and so is audited), against a simulated agent (SQLite store); reports
// the median.
func BenchmarkExecPs(b *testing.B) {
	benchMedian(b, "GET", "/api/exec/x1/ps", nil)
}

// benchMedian sends method path (with body, when not nil) once per round
// to a server with the simulated exec-agent x1 and reports the median
// latency.
func benchMedian(b *testing.B, method, path string, body []byte) {
	ts := benchServer(b)
	newFakeExec(b, ts.addr, "x1", protocol.CapAck, protocol.CapBulk, protocol.CapStream)
	ts.waitAgent(b, "x1")
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, ts.url+path, r)
		ts.discard(b, req)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
}

// discard sends req with the operator token and reads the answer away: an
// error or a status other than 200 ends the benchmark. It returns the
// bytes of the body.
func (ts *testServer) discard(b *testing.B, req *http.Request) int64 {
	b.Helper()
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := ts.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
	return n
}

// BenchmarkTransfer moves 64 MiB up and down through the server with a
// bulk.v1 simulated agent (which holds the file in memory).
func BenchmarkTransfer(b *testing.B) {
	const size = 64 << 20
	ts := benchServer(b)
	fa := newFakeExec(b, ts.addr, "x1", protocol.CapAck, protocol.CapBulk, protocol.CapStream)
	ts.waitAgent(b, "x1")
	data := randBytes(size)
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			pr, pw := io.Pipe()
			mw := multipart.NewWriter(pw)
			go func() {
				_ = mw.WriteField("dir", "/d")
				w, _ := mw.CreateFormFile("file", "big")
				_, _ = w.Write(data)
				_ = mw.Close()
				_ = pw.Close()
			}()
			req, _ := http.NewRequest("POST", ts.url+"/api/file/x1/upload", pr)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			ts.discard(b, req)
		}
	})
	fa.mu.Lock()
	fa.files["/big"] = data
	fa.mu.Unlock()
	b.Run("download", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			req, _ := http.NewRequest("GET", ts.url+"/api/file/x1/download?dir=/big", nil)
			if n := ts.discard(b, req); n != size {
				b.Fatalf("%d bytes, want %d", n, size)
			}
		}
	})
}

// benchServer runs a server for a benchmark (the test helpers need a
// *testing.T): SQLite in a temp dir, no rate limit.
func benchServer(b *testing.B) *testServer {
	cfg := testserver.Config("bench", b.TempDir())
	cfg.API.RateLimit = 0
	run := testserver.Start(b, cfg, server.Options{})
	ts := &testServer{srv: run.Server, running: run, addr: run.Addr(), url: run.URL, client: &http.Client{Transport: &http.Transport{}}}
	b.Cleanup(ts.client.CloseIdleConnections)
	return ts
}

func (ts *testServer) waitAgent(b *testing.B, id string) {
	b.Helper()
	eventually.True(b, "agent "+id+" connected", func() bool { _, ok := ts.srv.Hub().Session(id); return ok })
}
