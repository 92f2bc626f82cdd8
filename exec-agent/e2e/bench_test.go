//go:build linux && e2ebench

package e2e

import (
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/filetest"

	"github.com/agentfleet/agent-server/servertest"
)

// BenchmarkExecTrue is the exec round trip of measured.md: POST
// /api/exec/:id/run {"cmd":"true"}, waiting for the result, through the
// real server to the real agent (a pty, as the API runs commands).
func BenchmarkExecTrue(b *testing.B) {
	e := newEnv(b, benchEnv())
	for range 5 { // warm up: connections, first fork
		e.run(runReq{Cmd: "true"}, false)
	}
	lat := make([]time.Duration, 0, b.N)
	// CPU per exec of each process (user + system, the agent's children
	// not included): less at the mercy of a loaded machine than latency.
	srv0, ag0 := servertest.MustProcCPU(b, e.server.PID()), servertest.MustProcCPU(b, e.agent.PID())
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		rr, r := e.run(runReq{Cmd: "true"}, false)
		lat = append(lat, time.Since(t0))
		if r.status != 200 || rr.Result == nil || rr.Result.Code != 0 {
			b.Fatalf("run: %d %s", r.status, r.body)
		}
	}
	b.StopTimer()
	// The floor in the same run: what starting and reaping `sh -c true`
	// costs a Go process on this machine now (median of 200).
	floor := make([]time.Duration, 0, 200)
	for range 200 {
		t0 := time.Now()
		if err := exec.Command("/bin/sh", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
		floor = append(floor, time.Since(t0))
	}
	slices.Sort(floor)
	b.ReportMetric(float64(floor[len(floor)/2])/1e6, "floor-sh-true-ms")
	perOp := func(d time.Duration) float64 { return float64(d) / 1e3 / float64(b.N) }
	b.ReportMetric(perOp(servertest.MustProcCPU(b, e.server.PID())-srv0), "server-cpu-µs/op")
	b.ReportMetric(perOp(servertest.MustProcCPU(b, e.agent.PID())-ag0), "agent-cpu-µs/op")
	reportLatency(b, lat)
}

// benchEnv connects the agent straight to the server. E2E_AGENT_DIR puts
// the agent's conf, state and journal elsewhere (e.g. /dev/shm, to see
// what the journal's fsyncs cost).
func benchEnv() envOptions {
	return envOptions{direct: true, agentDir: os.Getenv("E2E_AGENT_DIR"), logLevel: "info"}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(lat[len(lat)/2]), "ms-median")
	b.ReportMetric(ms(lat[0]), "ms-min")
	b.ReportMetric(ms(lat[len(lat)*9/10]), "ms-p90")
	b.ReportMetric(ms(lat[len(lat)-1]), "ms-max")
	b.ReportMetric(0, "ns/op")
}

// rssSampler records the largest VmRSS of pid, sampled every 5 ms.
type rssSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	max  atomic.Int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{})}
	s.wg.Go(func() {
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			if rss, _ := servertest.ProcKB(pid, "VmRSS"); rss > s.max.Load() {
				s.max.Store(rss)
			}
			select {
			case <-s.stop:
				return
			case <-tk.C:
			}
		}
	})
	return s
}

// done stops sampling and returns the largest RSS seen, in MB (10^6).
func (s *rssSampler) done() float64 {
	close(s.stop)
	s.wg.Wait()
	return float64(s.max.Load()) * 1024 / 1e6
}

const bigSize = 200e6

// BenchmarkUpload200MB uploads a 200 MB file through the server's API to
// the agent (multipart POST; the agent GETs the bytes over bulk.v1) and
// reports MB/s and the agent's largest RSS meanwhile.
func BenchmarkUpload200MB(b *testing.B) {
	e := newEnv(b, benchEnv())
	src, dst := b.TempDir(), b.TempDir()
	sum := filetest.Make(b, filepath.Join(src, "big"), bigSize, filetest.Compressible)
	idle, _ := servertest.ProcKB(e.agent.PID(), "VmRSS")
	s := sampleRSS(e.agent.PID())
	b.SetBytes(bigSize)
	b.ResetTimer()
	for range b.N {
		if r := e.upload(filepath.Join(src, "big"), dst, "big", sum); r.status != 200 {
			b.Fatalf("upload: %d %s", r.status, r.body)
		}
	}
	b.StopTimer()
	b.ReportMetric(s.done(), "agent-max-RSS-MB")
	b.ReportMetric(float64(idle)*1024/1e6, "agent-idle-RSS-MB")
	if got, n := filetest.MD5(b, filepath.Join(dst, "big")); got != sum || n != bigSize {
		b.Fatalf("uploaded file md5 %s size %d", got, n)
	}
}

// BenchmarkDownload200MB downloads a 200 MB file from the agent through the
// server's API (the agent PUTs the bytes over bulk.v1; the server streams
// them to the client) and reports MB/s and the agent's largest RSS.
func BenchmarkDownload200MB(b *testing.B) {
	e := newEnv(b, benchEnv())
	src := b.TempDir()
	sum := filetest.Make(b, filepath.Join(src, "big"), bigSize, filetest.Compressible)
	s := sampleRSS(e.agent.PID())
	b.SetBytes(bigSize)
	b.ResetTimer()
	for range b.N {
		h := md5.New()
		status, _, body := e.download(filepath.Join(src, "big"), h)
		if status != 200 {
			b.Fatalf("download: %d %s", status, body)
		}
		if got := fmt.Sprintf("%x", h.Sum(nil)); got != sum {
			b.Fatalf("md5 %s, want %s", got, sum)
		}
	}
	b.StopTimer()
	b.ReportMetric(s.done(), "agent-max-RSS-MB")
	hwm, _ := servertest.ProcKB(e.agent.PID(), "VmHWM")
	b.ReportMetric(float64(hwm)*1024/1e6, "agent-peak-RSS-MB")
}
