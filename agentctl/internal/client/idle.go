package client

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Idle limits of streamed replies: a stream that stays silent this long
// is given up (the caller reconnects or reports). The event stream gets a
// comment every 15 s from the server.
var (
	eventsIdle   = 60 * time.Second
	downloadIdle = 2 * time.Minute
)

// idleBody cancels its request when no byte arrived for d: a server or
// network gone silent ends the read with an error instead of a hang.
type idleBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	d      time.Duration
	cancel context.CancelFunc
	fired  chan struct{}
}

// withIdle returns ctx for a request and a wrapper for its body.
func withIdle(ctx context.Context, d time.Duration) (context.Context, func(io.ReadCloser) io.ReadCloser, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	wrap := func(rc io.ReadCloser) io.ReadCloser {
		b := &idleBody{rc: rc, d: d, cancel: cancel, fired: make(chan struct{})}
		b.timer = time.AfterFunc(d, func() { close(b.fired); cancel() })
		return b
	}
	return ctx, wrap, cancel
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.d)
	}
	if err != nil {
		select {
		case <-b.fired:
			return n, fmt.Errorf("nothing received for %s: %w", b.d, err)
		default:
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}
