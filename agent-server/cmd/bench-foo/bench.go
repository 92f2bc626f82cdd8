package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// bench holds what every call needs. Its methods are safe for one caller.
type bench struct {
	base    string // http://host:port
	token   string
	clients int
	timeout time.Duration
	hc      *http.Client
}

func (b *bench) client() *http.Client {
	if b.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = b.clients
		tr.MaxIdleConnsPerHost = b.clients
		b.hc = &http.Client{Transport: tr, Timeout: b.timeout}
	}
	return b.hc
}

// pageSize is the largest page GET /api/agents gives (store.MaxPageSize).
const pageSize = 1000

// onlineAgents returns up to n ids of online agents of type typ, sorted.
func (b *bench) onlineAgents(ctx context.Context, typ string, n int) ([]string, error) {
	var ids []string
	for page := 1; ; page++ {
		q := url.Values{"online": {"1"}, "type": {typ}, "size": {strconv.Itoa(pageSize)}, "page": {strconv.Itoa(page)}}
		var list []struct {
			ID string `json:"id"`
		}
		if err := b.getJSON(ctx, "/api/agents?"+q.Encode(), &list); err != nil {
			return nil, fmt.Errorf("list agents page %d: %w", page, err)
		}
		for _, a := range list {
			ids = append(ids, a.ID)
		}
		if len(list) < pageSize || len(ids) >= n {
			break
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > n {
		ids = ids[:n]
	}
	return ids, nil
}

// getJSON GETs path and decodes the envelope's data into v.
func (b *bench) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var env struct {
		Code int             `json:"code"`
		Msg  string          `json:"msg"`
		Data json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, env.Msg)
	}
	return json.Unmarshal(env.Data, v)
}

// result is the outcome of callAll.
type result struct {
	calls   int
	ok      int            // answered with reply "bar"
	errs    map[string]int // by "HTTP <code>: msg" or transport error
	lat     []time.Duration
	elapsed time.Duration
}

// callAll calls /api/foo/{id} once for every id from b.clients goroutines.
func (b *bench) callAll(ctx context.Context, ids []string) *result {
	res := &result{calls: len(ids), errs: map[string]int{}, lat: make([]time.Duration, 0, len(ids))}
	next := make(chan string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range min(b.clients, max(len(ids), 1)) {
		wg.Go(func() {
			for id := range next {
				t0 := time.Now()
				var rep struct {
					Reply string `json:"reply"`
				}
				err := b.getJSON(ctx, "/api/foo/"+url.PathEscape(id), &rep)
				d := time.Since(t0)
				if err == nil && rep.Reply != "bar" {
					err = fmt.Errorf("reply %q, want bar", rep.Reply)
				}
				mu.Lock()
				res.lat = append(res.lat, d)
				if err != nil {
					res.errs[errKey(err)]++
				} else {
					res.ok++
				}
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		select {
		case next <- id:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// errKey groups errors: HTTP errors by status and message, others by text
// without the request URL.
func errKey(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// percentile returns the nearest-rank p-th percentile of sorted ds.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

func (r *result) print(w io.Writer) {
	slices.Sort(r.lat)
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) }
	fmt.Fprintf(w, "calls=%d ok=%d errors=%d elapsed=%s rate=%.0f/s\n",
		r.calls, r.ok, r.calls-r.ok, r.elapsed.Round(time.Millisecond), float64(r.calls)/max(r.elapsed.Seconds(), 1e-9))
	fmt.Fprintf(w, "latency_ms p50=%s p90=%s p99=%s max=%s\n",
		ms(percentile(r.lat, 50)), ms(percentile(r.lat, 90)), ms(percentile(r.lat, 99)), ms(percentile(r.lat, 100)))
	keys := make([]string, 0, len(r.errs))
	for k := range r.errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "error %dx: %s\n", r.errs[k], k)
	}
}
