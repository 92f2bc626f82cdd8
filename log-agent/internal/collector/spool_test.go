package collector

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/log-agent/internal/batch"
)

// TestSinkAwaySpoolFullCountedLoss: while the sink is away the spool fills
// up; the oldest batches are dropped and counted; when the sink is back
// the rest arrives, and shipped + dropped accounts for every line.
func TestSinkAwaySpoolFullCountedLoss(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	const total = 30_000
	var b strings.Builder
	rnd := make([]byte, 48)
	for i := range total {
		rand.Read(rnd)
		fmt.Fprintf(&b, "%06d %s\n", i, hex.EncodeToString(rnd)) // ≈ 104 bytes, incompressible
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := mustProject(t, fmt.Sprintf(`{"name":"full","type":"logtail","paths":[%q],"read_from":"beginning","interval":1}`, path))
	sink := newRecSink()
	sink.setDown(true)
	r := start(t, p, filepath.Join(dir, "state"), sink, func(o *Options) { o.SpoolBytes = 1 << 20 })
	eventually.True(t, "every line read and drops counted", func() bool {
		st := r.c.Status()
		return st.Lines == total && st.DroppedLines > 0 && st.LagBytes > 0
	})
	sink.setDown(false)
	eventually.NoError(t, "shipped + dropped = written", func() error {
		if st := r.c.Status(); st.ShippedLines+uint64(st.DroppedLines) != total {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	st := r.c.Status()
	r.stop(t)
	if sink.count() != int(st.ShippedLines) {
		t.Fatalf("sink holds %d, status says %d shipped", sink.count(), st.ShippedLines)
	}
	// What arrived is the newest lines, each once, in order.
	prev := -1
	for _, l := range sink.byName(t)[path+" ("+firstID(sink)+")"] {
		var i int
		fmt.Sscanf(l, "%d ", &i)
		if i <= prev {
			t.Fatalf("line %d after %d", i, prev)
		}
		prev = i
	}
	if prev != total-1 || st.DroppedBatches == 0 || st.LagBytes != 0 {
		t.Fatalf("last line %d, status %+v", prev, st)
	}
	t.Logf("dropped %d lines in %d batches, shipped %d", st.DroppedLines, st.DroppedBatches, st.ShippedLines)
}

func firstID(s *recSink) string {
	for id := range s.all() {
		return id
	}
	return ""
}

// TestDropBetweenDeliveryAndAck: the spool drops batches the sink has just
// acknowledged, before the shipper told the spool (the interleaving that
// counted a batch both shipped and dropped under load). The sink holds
// them, so they count shipped; every line counts once.
func TestDropBetweenDeliveryAndAck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rnd := make([]byte, 48)
	n := 0 // written by the test, then only by the hook
	const total = 100 + 40_000
	write := func(k int) {
		var b strings.Builder
		for range k {
			rand.Read(rnd)
			fmt.Fprintf(&b, "%06d %s\n", n, hex.EncodeToString(rnd)) // ≈ 104 bytes, incompressible
			n++
		}
		if _, err := f.WriteString(b.String()); err != nil {
			t.Fatal(err)
		}
	}
	write(100)
	p := mustProject(t, fmt.Sprintf(`{"name":"race","type":"logtail","paths":[%q],"read_from":"beginning","interval":1,"batch":50}`, path))
	sink := newRecSink()
	var c *Collector
	ready := make(chan struct{})
	var once sync.Once
	var inFlight []*batch.Batch
	r := start(t, p, filepath.Join(dir, "state"), sink, func(o *Options) {
		o.SpoolBytes = 1 << 20
		o.afterShip = func(acked []*batch.Batch) {
			<-ready
			once.Do(func() {
				inFlight = acked
				// Fill the spool until the batches just delivered are
				// dropped from it, before the shipper acknowledges them.
				// Hex is half entropy: 40 000 lines are about 2 MiB
				// compressed, twice the spool.
				write(40_000)
				last := acked[len(acked)-1].Seq
				deadline := time.Now().Add(time.Minute)
				for c.sp.Stats().Acked < last {
					if time.Now().After(deadline) {
						t.Errorf("batches up to %d not dropped from the spool: %+v", last, c.sp.Stats())
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	})
	c = r.c
	close(ready)
	eventually.True(t, "every line read", func() bool { return r.c.Status().Lines == total })
	eventually.True(t, "shipped + dropped = written", func() bool {
		st := r.c.Status()
		return st.LagBytes == 0 && st.ShippedLines+uint64(st.DroppedLines) >= total
	})
	st := r.c.Status()
	r.stop(t)
	if st.ShippedLines+uint64(st.DroppedLines) != total || st.DroppedLines == 0 {
		t.Fatalf("%d lines written, status %+v", total, st)
	}
	if sink.count() != int(st.ShippedLines) {
		t.Fatalf("sink holds %d lines, status says %d shipped", sink.count(), st.ShippedLines)
	}
	if len(inFlight) == 0 {
		t.Fatal("the hook did not run")
	}
}
