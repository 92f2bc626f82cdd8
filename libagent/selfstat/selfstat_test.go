package selfstat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// fakeNow is a clock the test advances by hand, so wall time is exact.
type fakeNow struct{ t time.Time }

func (f *fakeNow) now() time.Time { return f.t }

func TestSaneValues(t *testing.T) {
	s := New(0)
	got, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if got.RSS < 1<<20 || got.RSS > 8<<30 {
		t.Errorf("RSS %d out of range", got.RSS)
	}
	if got.MemPercent <= 0 || got.MemPercent > 100 {
		t.Errorf("MemPercent %v", got.MemPercent)
	}
	if got.Threads < 1 || got.Goroutines < 1 {
		t.Errorf("threads %d goroutines %d", got.Threads, got.Goroutines)
	}
	now := time.Now().Unix()
	if got.StartTime > now || got.StartTime < now-3600 {
		t.Errorf("StartTime %d, now %d", got.StartTime, now)
	}
	if got.HeapInuse == 0 {
		t.Error("HeapInuse 0")
	}
	runtime.GC()
	got, err = s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	p := got.GCPause
	if p[4] <= 0 || p[4] > 1 {
		t.Errorf("max GC pause %v after a GC", p[4])
	}
	for i := 1; i < 5; i++ {
		if p[i] < p[i-1] {
			t.Errorf("GC quantiles not ordered: %v", p)
		}
	}
}

func TestCPUBusyVersusIdle(t *testing.T) {
	clk := &fakeNow{t: time.Unix(1000, 0)}
	s := NewWithOptions(0, Options{Now: clk.now})

	// Idle: 10 s of wall time with almost no CPU used.
	clk.t = clk.t.Add(10 * time.Second)
	idle, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if idle.CPUPercent < 0 || idle.CPUPercent > 5 {
		t.Fatalf("idle CPU %.1f%%, want < 5%%", idle.CPUPercent)
	}

	// Busy: burn 300 ms of CPU (however long that takes on a loaded
	// machine) and call it 400 ms of wall time: at least 75 %.
	start := s.last.cpu
	deadline := time.Now().Add(20 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		st, err := s.os.read()
		if err != nil {
			t.Fatal(err)
		}
		if st.cpu-start >= 300*time.Millisecond {
			break
		}
	}
	_ = x
	clk.t = clk.t.Add(400 * time.Millisecond)
	busy, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if busy.CPUPercent < 75 {
		t.Fatalf("busy CPU %.1f%%, want >= 75%%", busy.CPUPercent)
	}
	if busy.CPUPercent <= idle.CPUPercent*10 {
		t.Fatalf("busy %.1f%% not clearly above idle %.1f%%", busy.CPUPercent, idle.CPUPercent)
	}
}

func TestMissingProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("procfs layout")
	}
	s := NewWithOptions(os.Getpid(), Options{ProcRoot: t.TempDir()})
	if _, err := s.Sample(); err == nil {
		t.Fatal("Sample of a missing /proc entry succeeded")
	}
}
