package api

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// eventStream is a text/event-stream answer (the task events, the log
// tail); newEventStream sends its headers.
type eventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newEventStream(w http.ResponseWriter) *eventStream {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &eventStream{w: w, rc: http.NewResponseController(w)}
}

// event writes one event (its fields, "\n\n" added) within 30 s.
func (es *eventStream) event(format string, args ...any) error {
	_ = es.rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := fmt.Fprintf(es.w, format+"\n\n", args...)
	return err
}

func (es *eventStream) flush() error { return es.rc.Flush() }

// pump passes what arrives on c to each until c closes (then closed, when
// given, writes its last words), each returns false, or the client goes
// away. A keep-alive comment every heartbeat keeps proxies from closing
// an idle stream.
func pump[T any](ctx context.Context, es *eventStream, heartbeat time.Duration, c <-chan T, each func(T) bool, closed func()) {
	hb := time.NewTicker(heartbeat)
	defer hb.Stop()
	for {
		select {
		case v, ok := <-c:
			if !ok {
				if closed != nil {
					closed()
				}
				return
			}
			if !each(v) {
				return
			}
		case <-hb.C:
			if _, err := fmt.Fprint(es.w, ": keep-alive\n\n"); err != nil {
				return
			}
			_ = es.flush()
		case <-ctx.Done():
			return
		}
	}
}
