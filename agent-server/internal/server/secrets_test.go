package server

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/internal/store"
	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openTestStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// wantHash checks what get returns for id.
func wantHash(t *testing.T, what string, get func(context.Context, string) ([]byte, error), id string, want []byte) {
	t.Helper()
	h, err := get(context.Background(), id)
	if err != nil || !bytes.Equal(h, want) || (h == nil) != (want == nil) {
		t.Fatalf("%s: hash of %s = %x, %v; want %x", what, id, h, err, want)
	}
}

func TestSecretStoreWriteBehind(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	if err := st.SetSecretHash(ctx, "old", []byte{9}); err != nil {
		t.Fatal(err)
	}
	s := newSecretStore(st, slog.New(slog.DiscardHandler), time.Hour)

	in := []byte{1, 2}
	for id, h := range map[string][]byte{"a": in, "b": {3}, "old": nil} {
		if err := s.SetSecretHash(ctx, id, h); err != nil {
			t.Fatal(err)
		}
	}
	in[0] = 7 // the caller's slice is not kept
	// Answered from memory, not yet in the store.
	wantHash(t, "pending", s.SecretHash, "a", []byte{1, 2})
	wantHash(t, "pending", s.SecretHash, "old", nil)
	wantHash(t, "store before flush", st.SecretHash, "a", nil)
	wantHash(t, "store before flush", st.SecretHash, "old", []byte{9})
	wantHash(t, "unknown", s.SecretHash, "none", nil)

	if !s.flush() {
		t.Fatal("flush failed")
	}
	wantHash(t, "store after flush", st.SecretHash, "a", []byte{1, 2})
	wantHash(t, "store after flush", st.SecretHash, "b", []byte{3})
	wantHash(t, "store after flush", st.SecretHash, "old", nil)
	wantHash(t, "after flush", s.SecretHash, "b", []byte{3})
	if n := len(s.pending); n != 0 {
		t.Fatalf("%d hashes still pending after a flush", n)
	}
}

func TestSecretStoreFailedWriteKept(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	s := newSecretStore(st, slog.New(slog.DiscardHandler), time.Hour)
	if err := s.SetSecretHash(ctx, "a", []byte{1}); err != nil {
		t.Fatal(err)
	}
	st.Close() // every write fails now
	if s.flush() {
		t.Fatal("flush on a closed store succeeded")
	}
	wantHash(t, "after a failed flush", s.SecretHash, "a", []byte{1})
}

// A hash replaced while its flush runs stays pending with the new value.
func TestSecretStoreChangedDuringFlush(t *testing.T) {
	ctx := context.Background()
	st := &hookStore{Store: openTestStore(t)}
	s := newSecretStore(st, slog.New(slog.DiscardHandler), time.Hour)
	if err := s.SetSecretHash(ctx, "a", []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecretHash(ctx, "b", []byte{2}); err != nil {
		t.Fatal(err)
	}
	st.during = func() { _ = s.SetSecretHash(ctx, "a", []byte{5}) }
	if !s.flush() {
		t.Fatal("flush failed")
	}
	st.during = nil
	wantHash(t, "store", st.SecretHash, "a", []byte{1})
	wantHash(t, "replaced during the flush", s.SecretHash, "a", []byte{5})
	if _, ok := s.pending["b"]; ok || len(s.pending) != 1 {
		t.Fatalf("pending after the flush: %v, want only a", s.pending)
	}
	if !s.flush() {
		t.Fatal("flush failed")
	}
	wantHash(t, "store after the second flush", st.SecretHash, "a", []byte{5})
}

// hookStore runs during inside SetSecretHashes, before the write.
type hookStore struct {
	store.Store
	during func()
}

func (h *hookStore) SetSecretHashes(ctx context.Context, hashes map[string][]byte) error {
	if h.during != nil {
		h.during()
	}
	return h.Store.SetSecretHashes(ctx, hashes)
}

func TestSecretStoreRun(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)

	// Written shortly after the first pending hash.
	s := newSecretStore(st, slog.New(slog.DiscardHandler), time.Millisecond)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.run(runCtx) }()
	if err := s.SetSecretHash(ctx, "a", []byte{1}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the hash written", func() bool { h, _ := st.SecretHash(ctx, "a"); return h != nil })
	stop()
	<-done

	// And at the end of run, however long the interval.
	s = newSecretStore(st, slog.New(slog.DiscardHandler), time.Hour)
	runCtx, stop = context.WithCancel(ctx)
	done = make(chan struct{})
	go func() { defer close(done); s.run(runCtx) }()
	if err := s.SetSecretHash(ctx, "b", []byte{2}); err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	wantHash(t, "store after run returned", st.SecretHash, "b", []byte{2})
}
