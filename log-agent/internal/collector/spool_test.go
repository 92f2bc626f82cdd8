package collector

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	eventually(t, "every line read and drops counted", func() bool {
		st := r.c.Status()
		return st.Lines == total && st.DroppedLines > 0 && st.LagBytes > 0
	})
	sink.setDown(false)
	onTimeout = func() { t.Logf("status %+v", r.c.Status()) }
	defer func() { onTimeout = nil }()
	eventually(t, "shipped + dropped = written", func() bool {
		st := r.c.Status()
		return st.ShippedLines+uint64(st.DroppedLines) == total
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
