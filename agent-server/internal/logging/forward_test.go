package logging

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentfleet/libagent/logship"

	"github.com/agentfleet/agent-server/internal/natstest"

	"github.com/agentfleet/jkframe/eventually"
)

// fwdLineKey is what identifies a line: host, source id, offset.
type fwdLineKey struct {
	host, source string
	offset       int64
}

// appendLines stores n numbered lines of source src of host in batches
// of batch, continuing at line from.
func appendLines(t testing.TB, s *Store, project, host string, srcs []Source, from, n, batch int) {
	t.Helper()
	for k := from; k < from+n; k += batch {
		var rs []logship.Record
		for i := k; i < min(k+batch, from+n); i++ {
			for si := range srcs {
				rs = append(rs, logship.Record{Source: si, Offset: int64(i) * 100, Time: time.Unix(1700000000, int64(i)).UnixNano(),
					Data: fmt.Appendf(nil, "%s %s line %06d", host, srcs[si].ID, i)})
			}
		}
		if _, err := s.Append(project, host, srcs, rs); err != nil {
			t.Fatal(err)
		}
	}
}

// checkStream reads a stream and checks that it holds every line of
// want exactly once, in offset order per source, with its headers.
func checkStream(t testing.TB, js jetstream.JetStream, stream string, want map[fwdLineKey]string) {
	t.Helper()
	msgs := streamMsgs(t, js, stream)
	seen := map[fwdLineKey]int{}
	last := map[[2]string]int64{}
	for _, m := range msgs {
		h := m.Headers()
		off, err := strconv.ParseInt(h.Get("Log-Offset"), 10, 64)
		if err != nil {
			t.Fatalf("message %s: Log-Offset %q", m.Subject(), h.Get("Log-Offset"))
		}
		k := fwdLineKey{h.Get("Log-Host"), h.Get("Log-Source-Id"), off}
		seen[k]++
		if w, ok := want[k]; !ok || w != string(m.Data()) {
			t.Fatalf("unexpected message %+v %q (want %q, known %v)", k, m.Data(), w, ok)
		}
		ps := [2]string{k.host, k.source}
		if l, ok := last[ps]; ok && off <= l {
			t.Fatalf("source %v: offset %d after %d", ps, off, l)
		}
		last[ps] = off
		if h.Get("Nats-Msg-Id") == "" || h.Get("Log-Source") == "" || h.Get("Log-Time") == "" {
			t.Fatalf("message %+v lacks headers: %v", k, h)
		}
	}
	for k := range want {
		if seen[k] != 1 {
			t.Fatalf("line %+v in the stream %d times", k, seen[k])
		}
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
}

func wantLines(hosts []string, srcs []Source, from, n int, into map[fwdLineKey]string) map[fwdLineKey]string {
	if into == nil {
		into = map[fwdLineKey]string{}
	}
	for _, h := range hosts {
		for i := from; i < from+n; i++ {
			for _, s := range srcs {
				into[fwdLineKey{h, s.ID, int64(i) * 100}] = fmt.Sprintf("%s %s line %06d", h, s.ID, i)
			}
		}
	}
	return into
}

// TestForwardExactlyOnce: lines stored before and after the forwarder
// starts, of two hosts (one with an id that is not a subject token),
// arrive once each; a forwarder that lost its cursor sends them all again
// and JetStream drops every re-send by its message id.
func TestForwardExactlyOnce(t *testing.T) {
	addr := natsTestAddr(t)
	js := testJS(t, addr)
	o := fwdOptions(t, js, "nats://"+addr)
	dir := t.TempDir()
	s := openTestStore(t, dir, StoreOptions{SegmentBytes: 64 << 10})
	srcs := []Source{{"s1", "/var/log/a.log"}, {"s2", "/var/log/b.log"}}
	hosts := []string{"h1", "host.with dots"}
	for _, h := range hosts {
		appendLines(t, s, "p.1", h, srcs, 0, 1500, 100)
	}
	f := startForwarder(t, s, o)
	for _, h := range hosts {
		appendLines(t, s, "p.1", h, srcs, 1500, 500, 70)
		f.notify("p.1", h)
	}
	const total = 2 * 2 * 2000
	stream := o.StreamName("p.1")
	eventually.Within(t, 2*time.Minute, "all lines forwarded", func() bool { return f.forwardedLines("p.1") >= total })
	want := wantLines(hosts, srcs, 0, 2000, nil)
	checkStream(t, js, stream, want)
	if n := f.forwardedLines("p.1"); n != total {
		t.Fatalf("forwarded %d, want %d", n, total)
	}
	f.stop()

	// The cursors lost: everything is sent again, and dropped by JetStream.
	for _, h := range hosts {
		if err := os.Remove(filepath.Join(dir, "p.1", hostDir(h), cursorFile)); err != nil {
			t.Fatal(err)
		}
	}
	f2 := startForwarder(t, s, o)
	for _, h := range hosts {
		f2.notify("p.1", h)
	}
	eventually.Within(t, 2*time.Minute, "all lines sent again", func() bool { return f2.forwardedLines("p.1") >= total })
	if d := testutil.ToFloat64(f2.m.dups.WithLabelValues("p.1")); d != total {
		t.Errorf("duplicates acknowledged: %v, want %d", d, total)
	}
	checkStream(t, js, stream, want)
}

// TestForwardOutage: NATS goes away (the connection cut, new ones
// refused) while lines are stored; the rounds fail and are counted, and
// once it is back every line arrives exactly once.
func TestForwardOutage(t *testing.T) {
	addr := natsTestAddr(t)
	js := testJS(t, addr)
	proxy := natstest.NewProxy(t, addr)
	o := fwdOptions(t, js, proxy.URL())
	s := openTestStore(t, t.TempDir(), StoreOptions{SegmentBytes: 32 << 10})
	srcs := []Source{{"s1", "/var/log/a.log"}}
	appendLines(t, s, "p", "h", srcs, 0, 1000, 50)
	f := startForwarder(t, s, o)
	eventually.Within(t, time.Minute, "first lines forwarded", func() bool { return f.forwardedLines("p") >= 1000 })

	proxy.Cut(true)
	eventually.Within(t, time.Minute, "the disconnection seen", func() bool { return testutil.ToFloat64(f.m.connected) == 0 })
	appendLines(t, s, "p", "h", srcs, 1000, 2000, 50)
	f.notify("p", "h")
	eventually.Within(t, time.Minute, "failed rounds counted", func() bool {
		return testutil.ToFloat64(f.m.failures.WithLabelValues("p", "connection")) > 0
	})
	eventually.Within(t, time.Minute, "the outage in the status", func() bool {
		st := f.status("p")
		return st.Failing && st.LastError != "" && st.LagBytes > 0
	})
	if n := f.forwardedLines("p"); n != 1000 {
		t.Fatalf("forwarded %d during the outage, want 1000", n)
	}

	proxy.Cut(false)
	eventually.Within(t, 2*time.Minute, "all lines forwarded after the outage", func() bool { return f.forwardedLines("p") >= 3000 })
	eventually.Within(t, time.Minute, "lag back to 0", func() bool { return testutil.ToFloat64(f.m.lag.WithLabelValues("p", "h")) == 0 })
	if st := f.status("p"); st.Failing || st.Lines != 3000 || st.Dropped != 0 {
		t.Errorf("status after the outage: %+v", st)
	}
	checkStream(t, js, o.StreamName("p"), wantLines([]string{"h"}, srcs, 0, 3000, nil))
}

// TestForwardRestartResumes: a forwarder stopped half way and a new one
// on the same store (the server restarted) go on from the cursor: the new
// one sends only what the first did not.
func TestForwardRestartResumes(t *testing.T) {
	addr := natsTestAddr(t)
	js := testJS(t, addr)
	o := fwdOptions(t, js, "nats://"+addr)
	o.Window = 100
	dir := t.TempDir()
	s := openTestStore(t, dir, StoreOptions{SegmentBytes: 16 << 10})
	srcs := []Source{{"s1", "/a"}, {"s2", "/b"}}
	appendLines(t, s, "p", "h", srcs, 0, 1000, 25)
	f := startForwarder(t, s, o)
	eventually.Within(t, time.Minute, "some lines forwarded", func() bool { return f.forwardedLines("p") >= 500 })
	f.stop()
	first := f.forwardedLines("p")
	if first >= 2000 {
		t.Logf("the first forwarder sent everything before it was stopped (%d)", first)
	}
	appendLines(t, s, "p", "h", srcs, 1000, 500, 25)
	f2 := startForwarder(t, s, o)
	eventually.Within(t, 2*time.Minute, "the rest forwarded", func() bool { return streamCount(t, js, o.StreamName("p")) >= 3000 })
	eventually.Within(t, time.Minute, "the rest acknowledged", func() bool { return first+f2.forwardedLines("p") >= 3000 })
	if n := f2.forwardedLines("p"); first+n != 3000 {
		t.Errorf("first forwarder %d + second %d lines, want 3000 (the second resumes at the cursor)", first, n)
	}
	if d := testutil.ToFloat64(f2.m.dups.WithLabelValues("p")); d != 0 {
		t.Errorf("%v duplicates after a clean stop", d)
	}
	checkStream(t, js, o.StreamName("p"), wantLines([]string{"h"}, srcs, 0, 1500, nil))
}

// TestForwardRetentionDropped: NATS is away while retention deletes
// segments not forwarded: their lines are counted as dropped, the rest
// arrives once, and forwarded + dropped is every line stored.
func TestForwardRetentionDropped(t *testing.T) {
	addr := natsTestAddr(t)
	js := testJS(t, addr)
	proxy := natstest.NewProxy(t, addr)
	proxy.Cut(true)
	o := fwdOptions(t, js, proxy.URL())
	o.Window = 50
	s := openTestStore(t, t.TempDir(), StoreOptions{SegmentBytes: 1, MaxBytes: 8 << 10})
	srcs := []Source{{"s1", "/a"}}
	appendLines(t, s, "p", "h", srcs, 0, 20, 20) // one segment, before the forwarder
	f := startForwarder(t, s, o)
	appendLines(t, s, "p", "h", srcs, 20, 2000, 20) // a segment per batch
	f.notify("p", "h")
	eventually.Within(t, time.Minute, "failed rounds", func() bool {
		return testutil.ToFloat64(f.m.failures.WithLabelValues("p", "connection")) > 0
	})
	n, _, err := s.Prune()
	if err != nil || n == 0 {
		t.Fatalf("prune: %d segments, %v", n, err)
	}
	dropped := int(testutil.ToFloat64(f.m.dropped.WithLabelValues("p", "retention")))
	if dropped == 0 || dropped > 2020-50 {
		t.Fatalf("dropped %d lines", dropped)
	}
	proxy.Cut(false)
	eventually.Within(t, 2*time.Minute, "the rest forwarded", func() bool { return f.forwardedLines("p")+dropped >= 2020 })
	eventually.Within(t, time.Minute, "lag back to 0", func() bool { return testutil.ToFloat64(f.m.lag.WithLabelValues("p", "h")) == 0 })
	fw := f.forwardedLines("p")
	if fw+dropped != 2020 {
		t.Fatalf("forwarded %d + dropped %d, want 2020", fw, dropped)
	}
	if st := f.status("p"); st.Dropped != int64(dropped) || st.Lines != int64(fw) {
		t.Errorf("status %+v", st)
	}
	// What arrived: the lines read before the deletions (in memory) and
	// those of the segments left, each once.
	msgs := streamMsgs(t, js, o.StreamName("p"))
	if len(msgs) != fw {
		t.Fatalf("%d messages, %d forwarded", len(msgs), fw)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		id := m.Headers().Get("Nats-Msg-Id")
		if seen[id] {
			t.Fatalf("%s twice", id)
		}
		seen[id] = true
	}
}

// TestForwardDropForwarded: without keep_store the closed segments go
// once forwarded; the open one stays.
func TestForwardDropForwarded(t *testing.T) {
	addr := natsTestAddr(t)
	js := testJS(t, addr)
	o := fwdOptions(t, js, "nats://"+addr)
	o.DropForwarded = true
	dir := t.TempDir()
	s := openTestStore(t, dir, StoreOptions{SegmentBytes: 1})
	srcs := []Source{{"s1", "/a"}}
	appendLines(t, s, "p", "h", srcs, 0, 300, 30)
	before, err := segments(filepath.Join(dir, "p", "h"))
	if err != nil {
		t.Fatal(err)
	}
	f := startForwarder(t, s, o)
	eventually.Within(t, time.Minute, "forwarded", func() bool { return f.forwardedLines("p") >= 300 })
	// The metric counts after the file is gone: wait for both.
	eventually.Within(t, time.Minute, "forwarded segments deleted", func() bool {
		return int(testutil.ToFloat64(f.m.deleted)) >= len(before)-1
	})
	if d := int(testutil.ToFloat64(f.m.deleted)); d != len(before)-1 {
		t.Errorf("%v segments deleted, want %d", d, len(before)-1)
	}
	if seqs, err := segments(filepath.Join(dir, "p", "h")); err != nil || len(seqs) != 1 || seqs[0] != before[len(before)-1] {
		t.Errorf("segments left %v (%v), want the newest of %v", seqs, err, before)
	}
	checkStream(t, js, o.StreamName("p"), wantLines([]string{"h"}, srcs, 0, 300, nil))
}

// TestForwardMarkStored: lines JetStream stored whose acknowledgements
// never came back (the cursor stayed behind them) are found in the stream
// by their message id and not sent again, whatever the duplicate window.
func TestForwardMarkStored(t *testing.T) {
	addr := natsTestAddr(t)
	js := testJS(t, addr)
	o := fwdOptions(t, js, "nats://"+addr)
	dir := t.TempDir()
	hdir := filepath.Join(dir, "p", "h")
	s := openTestStore(t, dir, StoreOptions{SegmentBytes: 8 << 10})
	srcs := []Source{{"s1", "/a"}}
	appendLines(t, s, "p", "h", srcs, 0, 100, 10)
	a := startForwarder(t, s, o)
	eventually.Within(t, time.Minute, "the first lines forwarded", func() bool { return a.forwardedLines("p") >= 100 })
	a.stop()
	before, ok, err := loadFwdCursor(hdir)
	if !ok || err != nil || before.Seq != 100 {
		t.Fatalf("cursor %+v %v %v", before, ok, err)
	}
	appendLines(t, s, "p", "h", srcs, 100, 200, 10)
	b := startForwarder(t, s, o)
	eventually.Within(t, time.Minute, "the rest forwarded", func() bool { return b.forwardedLines("p") >= 200 })
	b.stop()
	// As if b's acknowledgements had been lost: its cursor is the old one.
	if err := saveFwdCursor(hdir, before); err != nil {
		t.Fatal(err)
	}
	c := startForwarder(t, s, o)
	eventually.Within(t, time.Minute, "the lines found stored", func() bool { return c.forwardedLines("p") >= 200 })
	if d := testutil.ToFloat64(c.m.dups.WithLabelValues("p")); d != 0 {
		t.Errorf("%v lines sent again (duplicates), want 0", d)
	}
	c.stop()
	if after, _, _ := loadFwdCursor(hdir); after.Seq != 300 || !before.Pos.less(after.Pos) {
		t.Errorf("cursor after %+v (before %+v)", after, before)
	}
	checkStream(t, js, o.StreamName("p"), wantLines([]string{"h"}, srcs, 0, 300, nil))
}

// BenchmarkForward: b.N 200-byte lines stored (batches of 1000), then
// forwarded to the real JetStream until all are acknowledged.
func BenchmarkForward(b *testing.B) {
	addr := natsTestAddr(b)
	js := testJS(b, addr)
	o := fwdOptions(b, js, "nats://"+addr)
	o.MaxBytes = 2 << 30
	s, err := OpenStore(StoreOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	srcs := []Source{{"s1", "/a"}}
	line := []byte(strings.Repeat("x", 200))
	for k := 0; k < b.N; k += 1000 {
		var rs []logship.Record
		for i := k; i < min(k+1000, b.N); i++ {
			rs = append(rs, logship.Record{Offset: int64(i) * 201, Time: int64(i), Data: line})
		}
		if _, err := s.Append("p", "h", srcs, rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	f := startForwarder(b, s, o)
	eventually.Within(b, 30*time.Minute, "all forwarded", func() bool { return f.forwardedLines("p") >= b.N })
	b.StopTimer()
	b.SetBytes(200)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
