//go:build linux

package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seqOutput is what `seq 1 n` prints.
func seqOutput(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// A reader that falls behind — a slow Output here, an agent starved of CPU
// in production — still reads everything the main process wrote, however
// long after its exit: the output ends at end of file, not DrainTimeout after
// the exit. Before the fix the output was let go DrainTimeout after the exit
// and what was still buffered (whole 4 KiB pages) was lost without a word.
//
// The command prints a line, waits until the reader has it (a file the test
// creates), then prints the rest — small enough to fit in the pipe or
// terminal buffer — and exits; the reader is held until then and until the
// old rule's drain window is long over.
func TestLaggingReaderReadsToEOF(t *testing.T) {
	const drain = 50 * time.Millisecond
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := newRunner(t, Options{DrainTimeout: drain})
			flag := filepath.Join(t.TempDir(), "go")
			c := newCollector()
			exited := make(chan (<-chan struct{}), 1)
			held := false
			c.chunkFn = func([]byte) error {
				if held {
					return nil
				}
				held = true
				if err := os.WriteFile(flag, nil, 0o600); err != nil {
					t.Error(err)
				}
				<-(<-exited)
				time.Sleep(5 * drain)
				return nil
			}
			cmd := "echo first; while [ ! -e " + flag + " ]; do sleep 0.01; done; seq 1 500"
			tk, err := r.Start(context.Background(), Spec{Cmd: cmd, Pipe: m.pipe}, c)
			if err != nil {
				t.Fatal(err)
			}
			exited <- tk.exited
			res := c.result(t)
			got := c.text()
			if !m.pipe {
				got = strings.ReplaceAll(got, "\r\n", "\n")
			}
			want := "first\n" + seqOutput(500)
			if got != want {
				t.Errorf("got %d bytes, want %d (last line %q)", len(got), len(want), lastLine(got))
			}
			if res.Code != 0 || res.Cut || res.Dropped != 0 || res.OutputMsg() != "" {
				t.Errorf("result %+v %q", res, res.OutputMsg())
			}
		})
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// After the main process exited, output keeps being read as long as it
// keeps coming, even far beyond DrainTimeout in total. (Pipes only: with a
// terminal the kernel hangs it up when the main process, the session
// leader, exits, and background processes lose it.)
func TestBackgroundOutputReadWhileItFlows(t *testing.T) {
	r := newRunner(t, Options{DrainTimeout: time.Second})
	for _, m := range modes[1:] {
		t.Run(m.name, func(t *testing.T) {
			mark := treeMark(t)
			t.Cleanup(func() { killSurvivors(t, mark) })
			// 40 lines 50 ms apart: 2 s of output after the main process
			// exited, never a second of silence.
			cmd := "(i=1; while [ $i -le 40 ]; do echo line$i; i=$((i+1)); sleep 0.05; done) & echo main"
			res, out := run(t, r, Spec{Cmd: cmd, Env: []string{mark}, Pipe: m.pipe})
			out = strings.ReplaceAll(out, "\r\n", "\n")
			for i := 1; i <= 40; i++ {
				if !strings.Contains(out, fmt.Sprintf("line%d\n", i)) {
					t.Fatalf("line%d missing; output %q, result %+v", i, out, res)
				}
			}
			if res.Code != 0 || res.Cut {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// A background process that holds the output open but stays silent is let
// go of after DrainTimeout, and the result says so: which processes, and
// that their later output is not collected. (Pipes only, see above.)
func TestSilentHolderIsReported(t *testing.T) {
	r := newRunner(t, Options{})
	for _, m := range modes[1:] {
		t.Run(m.name, func(t *testing.T) {
			mark := treeMark(t)
			t.Cleanup(func() { killSurvivors(t, mark) })
			res, out := run(t, r, Spec{Cmd: "setsid sleep 300 & echo bye", Env: []string{mark}, Pipe: m.pipe})
			if res.Code != 0 || res.Reason != Exited || !strings.Contains(out, "bye") {
				t.Fatalf("code %d reason %v output %q", res.Code, res.Reason, out)
			}
			if !res.Cut || len(res.Holders) == 0 || !res.Incomplete() {
				t.Fatalf("result %+v: want cut with the holders", res)
			}
			if msg := res.OutputMsg(); !strings.Contains(msg, "output cut") || !strings.Contains(msg, strconv.Itoa(res.Holders[0])) {
				t.Fatalf("msg %q", msg)
			}
		})
	}
}

// Bytes read after an Output error are counted, not silently thrown away.
func TestOutputErrorCountsDropped(t *testing.T) {
	r := newRunner(t, Options{})
	c := newCollector()
	c.chunkFn = func([]byte) error { return errors.New("link down") }
	if _, err := r.Start(context.Background(), Spec{Cmd: "seq 1 100000", Pipe: true}, c); err != nil {
		t.Fatal(err)
	}
	res := c.result(t)
	if want := int64(len(seqOutput(100000))); res.Dropped != want {
		t.Fatalf("dropped %d, want %d (everything: the first chunk failed too)", res.Dropped, want)
	}
	if !strings.Contains(res.OutputMsg(), "dropped") {
		t.Fatalf("msg %q", res.OutputMsg())
	}
}
