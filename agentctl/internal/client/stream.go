package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"

	sse "github.com/tmaxmax/go-sse"
)

// stream opens the Server-Sent Events stream of GET path?q and yields its
// events, each of at most maxEvent bytes, until the stream ends or fails (a
// *ConnError, the last value yielded). The body is closed when the
// sequence ends; the stream stops after eventsIdle without a byte.
func (c *Client) stream(ctx context.Context, path string, q url.Values, maxEvent int) (iter.Seq2[sse.Event, error], error) {
	ctx, idle, cancel := withIdle(ctx, eventsIdle)
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: path, Query: q,
		Header: http.Header{"Accept": {"text/event-stream"}}, Stream: true})
	if err != nil {
		cancel()
		return nil, err
	}
	body := idle(resp.Body)
	return func(yield func(sse.Event, error) bool) {
		defer body.Close()
		for ev, err := range sse.Read(body, &sse.ReadConfig{MaxEventSize: maxEvent}) {
			if err != nil {
				yield(sse.Event{}, &ConnError{Server: resp.Request.URL.Host, Err: err})
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}, nil
}
