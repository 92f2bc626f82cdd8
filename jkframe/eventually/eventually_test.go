package eventually

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitComesTrue(t *testing.T) {
	var n atomic.Int32
	err := Poll{Interval: time.Millisecond}.Wait("the third check", func() error {
		if n.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n.Load() != 3 {
		t.Fatalf("Wait = %v after %d checks; want nil after 3", err, n.Load())
	}
}

func TestWaitTimesOut(t *testing.T) {
	var n, dumped int
	p := Poll{Timeout: 20 * time.Millisecond, Interval: time.Millisecond, OnTimeout: func() { dumped++ }}
	err := p.Wait("the queue empty", func() error {
		n++
		return fmt.Errorf("%d items queued", 10-n)
	})
	if err == nil {
		t.Fatal("Wait = nil; want a timeout")
	}
	for _, want := range []string{"timed out after 20ms waiting for the queue empty", fmt.Sprintf("checked %d times", n),
		fmt.Sprintf("last: %d items queued", 10-n)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if dumped != 1 {
		t.Errorf("OnTimeout ran %d times; want once", dumped)
	}
}

func TestWaitTrueNoLastState(t *testing.T) {
	err := WaitTrue(5*time.Millisecond, "never", func() bool { return false })
	if err == nil || strings.Contains(err.Error(), "last:") || !strings.Contains(err.Error(), "waiting for never") {
		t.Fatalf("WaitTrue = %v; want a timeout naming what, without a last state", err)
	}
}

// fatalTB records Fatal instead of ending the goroutine.
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) Helper()           {}
func (f *fatalTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func TestTrueAndNoError(t *testing.T) {
	ok := &fatalTB{TB: t}
	True(ok, "at once", func() bool { return true })
	NoError(ok, "at once", func() error { return nil })
	if ok.fatal != "" {
		t.Fatalf("a condition that holds failed the test: %s", ok.fatal)
	}
	bad := &fatalTB{TB: t}
	Poll{Timeout: time.Millisecond}.NoError(bad, "the port", func() error { return errors.New("connection refused") })
	if !strings.Contains(bad.fatal, "waiting for the port") || !strings.Contains(bad.fatal, "last: connection refused") {
		t.Fatalf("Fatal(%q); want the what and the last error", bad.fatal)
	}
	bad = &fatalTB{TB: t}
	Within(bad, time.Millisecond, "a flag", func() bool { return false })
	if !strings.Contains(bad.fatal, "timed out after 1ms waiting for a flag") {
		t.Fatalf("Fatal(%q); want the timeout", bad.fatal)
	}
}
