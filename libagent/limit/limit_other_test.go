//go:build !linux

package limit

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestApplyRuntime(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	mem := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs); debug.SetMemoryLimit(mem) })
	a, err := Apply(allLimitsOther, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("GOMAXPROCS %d, want ceil(150/100) = 2", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Fatalf("memory limit %d, want 1G", got)
	}
	if a.Mode != "runtime" || len(a.Settings) != 2 {
		t.Fatalf("Applied %+v", a)
	}
}

var allLimitsOther = Config{CPUQuota: 150, MemoryLimit: 1 << 30, DiskLimit: DiskLimits{{Major: 8, ReadIOPS: 1}}}
