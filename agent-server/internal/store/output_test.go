package store

import (
	"bytes"
	"context"
	"testing"
)

func testOutput(t *testing.T, s Store, cfg Config) {
	ctx := context.Background()
	task, _ := s.CreateTask(ctx, Task{Kind: KindExec})
	var all []byte
	for i := range 9 { // 9 chunks of 100 bytes
		p := bytes.Repeat([]byte{byte('a' + i)}, 100)
		n, err := s.AppendOutput(ctx, task.ID, "a", p)
		must(t, err)
		if n != 100 {
			t.Fatalf("kept %d of 100", n)
		}
		all = append(all, p...)
	}
	// Cap is 1000: 100 more fit, then 50 of 150, then nothing.
	p := bytes.Repeat([]byte("z"), 150)
	if n, err := s.AppendOutput(ctx, task.ID, "a", p[:100]); err != nil || n != 100 {
		t.Fatalf("at cap-100: kept %d, %v", n, err)
	}
	all = append(all, p[:100]...)
	if n, err := s.AppendOutput(ctx, task.ID, "a", p); err != nil || n != 0 {
		t.Fatalf("at cap: kept %d, %v", n, err)
	}
	if n, err := s.AppendOutput(ctx, task.ID, "a", nil); err != nil || n != 0 {
		t.Fatalf("empty append: %d, %v", n, err)
	}
	if size, err := s.OutputSize(ctx, task.ID, "a"); err != nil || size != cfg.OutputCap {
		t.Fatalf("size %d, %v; want %d", size, err, cfg.OutputCap)
	}
	// Another stream of the same task, partly over the cap.
	n, err := s.AppendOutput(ctx, task.ID, "b", bytes.Repeat([]byte("b"), 1200))
	if err != nil || n != 1000 {
		t.Fatalf("over cap in one go: kept %d, %v", n, err)
	}
	_, err = s.AppendOutput(ctx, "ghost", "a", []byte("x"))
	wantErr(t, err, ErrNotFound, "ghost")

	// At an offset: what the stream holds already is skipped (a retried or
	// replayed append), the rest appended; a gap or a negative offset is
	// refused.
	for _, tc := range []struct {
		off  int64
		p    string
		kept int
		want string
		err  error
	}{
		{0, "hello", 5, "hello", nil},
		{0, "hello", 5, "hello", nil},            // replayed whole
		{3, "lo, world", 9, "hello, world", nil}, // overlaps the end
		{12, "!", 1, "hello, world!", nil},       // at the end
		{20, "gap", 0, "hello, world!", ErrInvalid},
		{-1, "x", 0, "hello, world!", ErrInvalid},
	} {
		n, err := s.AppendOutputAt(ctx, task.ID, "c", tc.off, []byte(tc.p))
		if tc.err != nil {
			wantErr(t, err, tc.err, "offset")
		} else {
			must(t, err)
		}
		if n != tc.kept {
			t.Errorf("AppendOutputAt(%d, %q) kept %d, want %d", tc.off, tc.p, n, tc.kept)
		}
		b, _, err := s.ReadOutput(ctx, task.ID, "c", 0, -1)
		must(t, err)
		if string(b) != tc.want {
			t.Errorf("after AppendOutputAt(%d, %q): %q, want %q", tc.off, tc.p, b, tc.want)
		}
	}
	// The cap holds for appends at an offset too.
	must(t, func() error {
		_, err := s.AppendOutputAt(ctx, task.ID, "d", 0, bytes.Repeat([]byte("d"), 990))
		return err
	}())
	if n, err := s.AppendOutputAt(ctx, task.ID, "d", 980, bytes.Repeat([]byte("d"), 30)); err != nil || n != 20 {
		t.Errorf("at the cap: kept %d, %v; want 10 skipped + 10 appended", n, err)
	}

	for _, tc := range []struct {
		name        string
		off, length int64
		want        []byte
	}{
		{"all", 0, -1, all},
		{"all by length", 0, 1000, all},
		{"more than there is", 0, 5000, all},
		{"inside one chunk", 110, 20, all[110:130]},
		{"across chunks", 150, 420, all[150:570]},
		{"chunk boundary", 200, 100, all[200:300]},
		{"tail", 990, -1, all[990:]},
		{"last byte", 999, 1, all[999:]},
		{"at end", 1000, 10, []byte{}},
		{"beyond end", 5000, 10, []byte{}},
		{"zero length", 10, 0, []byte{}},
	} {
		got, total, err := s.ReadOutput(ctx, task.ID, "a", tc.off, tc.length)
		must(t, err)
		if total != 1000 || !bytes.Equal(got, tc.want) || got == nil {
			t.Fatalf("%s: total %d, %d bytes %q…, want %d bytes", tc.name, total, len(got), got[:min(len(got), 10)], len(tc.want))
		}
	}
	_, _, err = s.ReadOutput(ctx, task.ID, "a", -1, 10)
	wantErr(t, err, ErrInvalid, "negative offset -1")
	_, _, err = s.ReadOutput(ctx, "ghost", "a", 0, 10)
	wantErr(t, err, ErrNotFound, "ghost")
	got, total, err := s.ReadOutput(ctx, task.ID, "nobody", 0, -1)
	if err != nil || total != 0 || len(got) != 0 {
		t.Fatalf("stream without output: %q %d %v", got, total, err)
	}
}

func testOutputBigChunks(t *testing.T, s Store, cfg Config) {
	ctx := context.Background()
	cfg.OutputCap = -1 // unbounded
	s.Close()
	s = openStore(t, cfg)
	task, _ := s.CreateTask(ctx, Task{Kind: KindExec})
	big := make([]byte, 2*maxChunk+12345) // split into three rows
	for i := range big {
		big[i] = byte(i * 7)
	}
	n, err := s.AppendOutput(ctx, task.ID, "a", big)
	if err != nil || n != len(big) {
		t.Fatalf("kept %d of %d: %v", n, len(big), err)
	}
	got, total, err := s.ReadOutput(ctx, task.ID, "a", maxChunk-10, 20)
	must(t, err)
	if total != int64(len(big)) || !bytes.Equal(got, big[maxChunk-10:maxChunk+10]) {
		t.Fatalf("range across the split: total %d, %v", total, got)
	}
	got, _, _ = s.ReadOutput(ctx, task.ID, "a", 0, -1)
	if !bytes.Equal(got, big) {
		t.Fatalf("whole stream differs")
	}
}
