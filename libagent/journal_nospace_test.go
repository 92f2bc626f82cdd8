package libagent_test

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/fullfs"
	"github.com/agentfleet/jkframe/syncbuf"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

// TestJournalDiskFullWaitsThenArrives: the journal is on a real full file
// system (a tmpfs filled up). Reliable replies are not dropped: the
// producer waits and the agent logs why; once space comes back every reply
// arrives once, in order.
func TestJournalDiskFullWaitsThenArrives(t *testing.T) {
	const n = 200 // 200 records of 1 KB: far more than a page
	mnt := filepath.Join(t.TempDir(), "mnt")
	fullfs.Mount(t, mnt, 1<<20)
	srv := agenttest.New(t, agenttest.Options{})
	var logs syncbuf.Buffer
	var produced atomic.Int64
	release, started := make(chan struct{}), make(chan struct{})
	a := startAgent(t, srv.Addr(), agentSpec{
		opts: libagent.Options{JournalDir: filepath.Join(mnt, "journal"),
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))},
		setup: gatedProducer(n, 1000, started, release, &produced),
	})
	ctx, ag := a.connected(t, srv, 30*time.Second)
	tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "x"}})
	<-started
	free := fullfs.Fill(t, mnt)
	close(release)
	eventually.True(t, "the agent to log that the journal's disk is full", func() bool {
		return strings.Contains(logs.String(), "the disk is full; the reply waits until space comes back")
	})
	if p := produced.Load(); p >= n {
		t.Fatalf("produced all %d replies on a full disk", p)
	}
	free()
	var last uint64
	for i := range n {
		m, err := srv.Await(ctx, tid)
		if err != nil {
			t.Fatalf("reply %d: %v (produced %d)", i, err, produced.Load())
		}
		var data string
		if d := m.ExecData(); d != nil {
			data = d.Data
		}
		if want := fmt.Sprintf("%03d", i); !strings.HasPrefix(data, want) || m.Seq <= last {
			t.Fatalf("reply %d: seq %d after %d, data %.8q (type %s)", i, m.Seq, last, data, m.Type)
		}
		last = m.Seq
	}
	if d := srv.Duplicates(); d != 0 {
		t.Errorf("%d duplicates", d)
	}
	if !strings.Contains(logs.String(), "journal: space came back") {
		t.Error("the agent did not log that space came back")
	}
}
