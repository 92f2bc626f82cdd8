//go:build unix

package agent

import (
	"crypto/md5"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

// BenchmarkExecRoundTrip is exec "true" over the wire: exec → execd →
// exec_done, against the in-process agenttest server (ack.v1 journal in
// use), in a pty and with pipes. It isolates the agent's share of the
// API round trip (e2e BenchmarkExecTrue).
func BenchmarkExecRoundTrip(b *testing.B) {
	for _, pipe := range []bool{false, true} {
		b.Run(map[bool]string{false: "pty", true: "pipe"}[pipe], func(b *testing.B) {
			e := start(b, agenttest.Options{}, nil)
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				tid := e.send(&protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "true", Pipe: pipe}})
				for {
					m := e.await(tid, 10*time.Second)
					if m.Type == protocol.TypeExecDone {
						break
					}
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/1e6, "ms-median")
		})
	}
}

// BenchmarkTransfer200MB is the agent's share of a 200 MB upload (GET of
// the body from a one-shot URL, temp file, MD5, fsync, rename) and of a
// bulk.v1 download (PUT of the file), against an in-memory HTTP peer.
func BenchmarkTransfer200MB(b *testing.B) {
	const n = 200e6
	x := newXfer()
	x.get["big"] = pattern(n)
	e := start(b, agenttest.Options{HTTP: x}, nil)
	dir := b.TempDir()
	sum := md5.Sum(x.get["big"])
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			rep := e.call(&protocol.Msg{Type: protocol.TypeUpload, Payload: &protocol.Upload{
				Dir: dir, Name: "big", URI: "/x/big", Token: "tok", Size: n, MD5: sum, MD5Check: true}})
			if !rep.UploadRep().OK {
				b.Fatalf("upload: %+v", rep.UploadRep())
			}
		}
	})
	b.Run("download", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			rep := e.call(&protocol.Msg{Type: protocol.TypeDownloadReq, Payload: &protocol.DownloadReq{
				Dir: filepath.Join(dir, "big"), URI: "/x/d", Token: "tok"}})
			if !rep.DownloadRep().OK || rep.DownloadRep().MD5 != sum {
				b.Fatalf("download: %+v", rep.DownloadRep())
			}
		}
	})
}
