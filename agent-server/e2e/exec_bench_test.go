package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/server"
)

// BenchmarkExecRoundTrip: POST /api/exec/{id}/run {"cmd":"true"} waiting
// for the result, against a simulated agent (SQLite store); reports the
// median.
func BenchmarkExecRoundTrip(b *testing.B) {
	ts := benchServer(b)
	newFakeExec(b, ts.addr, "x1", protocol.CapAck, protocol.CapBulk, protocol.CapStream)
	ts.waitAgent(b, "x1")
	body := []byte(`{"cmd":"true"}`)
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		req, _ := http.NewRequest("POST", ts.url+"/api/exec/x1/run", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+opToken)
		resp, err := ts.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
}

// BenchmarkExecPs: GET /api/exec/{id}/ps, a read that reaches the agent
// (and so is audited), against a simulated agent (SQLite store); reports
// the median.
func BenchmarkExecPs(b *testing.B) {
	ts := benchServer(b)
	newFakeExec(b, ts.addr, "x1", protocol.CapAck, protocol.CapBulk, protocol.CapStream)
	ts.waitAgent(b, "x1")
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		req, _ := http.NewRequest("GET", ts.url+"/api/exec/x1/ps", nil)
		req.Header.Set("Authorization", "Bearer "+opToken)
		resp, err := ts.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
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
			req.Header.Set("Authorization", "Bearer "+opToken)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			resp, err := ts.client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	fa.mu.Lock()
	fa.files["/big"] = data
	fa.mu.Unlock()
	b.Run("download", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			req, _ := http.NewRequest("GET", ts.url+"/api/file/x1/download?dir=/big", nil)
			req.Header.Set("Authorization", "Bearer "+opToken)
			resp, err := ts.client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != size {
				b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
			}
		}
	})
}

// benchServer runs a server for a benchmark (the test helpers need a
// *testing.T): SQLite in a temp dir, no rate limit.
func benchServer(b *testing.B) *testServer {
	dir := b.TempDir()
	cfg := config.Default()
	cfg.ID, cfg.Listen, cfg.DataDir = "bench", 0, dir
	cfg.CacheDir, cfg.LogDir = filepath.Join(dir, "cache"), filepath.Join(dir, "logs")
	cfg.API.Tokens = []string{"ops:" + opToken}
	cfg.Agent.Tokens = []string{"fleet:" + agentToken}
	cfg.API.RateLimit = 0
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, server.Options{Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: 5 * time.Second})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	ts := &testServer{srv: srv, addr: srv.Addr(), url: "http://" + srv.Addr(), client: &http.Client{Transport: &http.Transport{}}}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		ts.client.CloseIdleConnections()
	})
	return ts
}

func (ts *testServer) waitAgent(b *testing.B, id string) {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, ok := ts.srv.Hub().Session(id); ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("agent %s did not connect", id)
		}
	}
}
