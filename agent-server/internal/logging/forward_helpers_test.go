package logging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentfleet/agent-server/internal/natstest"
)

// natsTestAddr: the NATS JetStream of the tests; fails in CI, skips
// elsewhere when it does not answer.
func natsTestAddr(t testing.TB) string { return natstest.Addr(t) }

func randName(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testJS is a separate connection the tests read the streams with.
func testJS(t testing.TB, addr string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// fwdOptions are unique stream and subject names per test; the streams
// are deleted at the end.
func fwdOptions(t testing.TB, js jetstream.JetStream, url string) ForwardOptions {
	id := randName(t)
	o := ForwardOptions{URLs: url, StreamPrefix: "TEST_" + id + "_", SubjectPrefix: "test" + id,
		MaxAge: time.Hour, MaxBytes: 256 << 20, BackoffMin: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond,
		AckTimeout: 2 * time.Second, Poll: 50 * time.Millisecond}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for names := js.StreamNames(ctx); ; {
			n, ok := <-names.Name()
			if !ok {
				break
			}
			if strings.HasPrefix(n, o.StreamPrefix) {
				if err := js.DeleteStream(ctx, n); err != nil {
					t.Errorf("delete stream %s: %v", n, err)
				}
			}
		}
	})
	return o
}

type testFwd struct {
	*forwarder
	reg    *prometheus.Registry
	cancel context.CancelFunc
	once   sync.Once
}

// startForwarder runs a forwarder on s for every project (generation 1).
func startForwarder(t testing.TB, s *Store, o ForwardOptions) *testFwd {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newFwdMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f, err := newForwarder(o, s, func(string) (int64, bool) { return 1, true }, m, log)
	if err != nil {
		t.Fatal(err)
	}
	s.o.BeforeDelete = f.beforeDelete // as Service.New does
	ctx, cancel := context.WithCancel(context.Background())
	f.start(ctx)
	tf := &testFwd{forwarder: f, reg: reg, cancel: cancel}
	t.Cleanup(tf.stop)
	return tf
}

func (tf *testFwd) stop() {
	tf.once.Do(func() {
		tf.forwarder.stop()
		tf.cancel()
	})
}

func (tf *testFwd) forwardedLines(project string) int {
	return int(testutil.ToFloat64(tf.m.lines.WithLabelValues(project)))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// streamMsgs reads every message of a stream.
func streamMsgs(t testing.TB, js jetstream.JetStream, name string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for len(out) < want {
		b, err := cons.Fetch(min(want-len(out), 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			out = append(out, m)
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d messages of %s", len(out), want, name)
		}
	}
	return out
}

func streamCount(t testing.TB, js jetstream.JetStream, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Msgs)
}
