package execsvc

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

// chunks is a reader that hands out its parts one Read at a time, then
// err (io.EOF when nil).
type chunks struct {
	parts [][]byte
	err   error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		if c.err == nil {
			return 0, io.EOF
		}
		return 0, c.err
	}
	n := copy(p, c.parts[0])
	if c.parts[0] = c.parts[0][n:]; len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

var errCut = errors.New("client went away")

func TestLiveSpoolFill(t *testing.T) {
	big := pattern(3*copyBuf + 17)
	tests := []struct {
		name  string
		parts [][]byte
		rerr  error
		limit int64
		err   string // "" = success
	}{
		{"empty", nil, nil, 10, ""},
		{"one byte", [][]byte{{'x'}}, nil, 1, ""},
		{"small reads", [][]byte{big[:5], big[5:4096], big[4096:]}, nil, int64(len(big)), ""},
		{"at the limit", [][]byte{big}, nil, int64(len(big)), ""},
		{"over the limit", [][]byte{big}, nil, int64(len(big)) - 1, "spool: too large: over 786448 bytes"},
		{"broken body", [][]byte{big[:100]}, errCut, 1 << 30, "spool: client went away"},
		{"truncated multipart part", [][]byte{big[:100]}, io.ErrUnexpectedEOF, 1 << 30, "spool: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var want []byte
			for _, p := range tt.parts {
				want = append(want, p...)
			}
			var grownAt []int64
			sp, err := NewLiveSpool(dir, &chunks{parts: tt.parts, err: tt.rerr}, tt.limit, func(_ *Spool, n int64) {
				grownAt = append(grownAt, n)
			})
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if es, _ := os.ReadDir(dir); len(es) != 0 {
					t.Errorf("spool files left: %v", es)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			if sp.Size != int64(len(want)) || sp.MD5 != md5.Sum(want) {
				t.Errorf("size %d md5 %x, want %d %x", sp.Size, sp.MD5, len(want), md5.Sum(want))
			}
			got := make([]byte, sp.Size)
			if _, err := sp.ReadAt(got, 0); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Error("spooled bytes differ")
			}
			// Large writes: one per copyBuf, whatever the reads.
			if wantGrown := (len(want) + copyBuf - 1) / copyBuf; len(grownAt) != wantGrown || wantGrown > 0 && grownAt[len(grownAt)-1] != int64(len(want)) {
				t.Errorf("grown at %v, want %d calls ending at %d", grownAt, wantGrown, len(want))
			}
		})
	}
}

// TestFollower reads a spool while it fills, step by step through a pipe.
func TestFollower(t *testing.T) {
	for _, end := range []string{"release", "abort", "client fails", "close", "ctx"} {
		t.Run(end, func(t *testing.T) {
			dir := t.TempDir()
			data := pattern(2*copyBuf + 100)
			pr, pw := io.Pipe()
			var (
				mu sync.Mutex
				fr io.Reader
			)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				sp  *Spool
				err error
			}
			done := make(chan result, 1)
			go func() {
				sp, err := NewLiveSpool(dir, pr, 1<<30, func(sp *Spool, n int64) {
					mu.Lock()
					defer mu.Unlock()
					if fr == nil {
						fr = sp.follow(ctx)
					}
				})
				done <- result{sp, err}
			}()
			follower := func() io.Reader {
				mu.Lock()
				defer mu.Unlock()
				return fr
			}
			// First block: everything but its last byte is readable.
			if _, err := pw.Write(data[:copyBuf]); err != nil {
				t.Fatal(err)
			}
			eventually.True(t, "a follower", func() bool { return follower() != nil })
			r := follower()
			got := make([]byte, copyBuf-1)
			if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data[:copyBuf-1]) {
				t.Fatalf("first block: %v", err)
			}
			// The rest, in a goroutine: the follower waits for it.
			rest := make(chan []byte, 1)
			restErr := make(chan error, 1)
			go func() {
				b, err := io.ReadAll(r)
				rest <- b
				restErr <- err
			}()
			if _, err := pw.Write(data[copyBuf:]); err != nil {
				t.Fatal(err)
			}
			switch end {
			case "client fails":
				pw.CloseWithError(errCut)
				if res := <-done; res.err == nil || !errors.Is(res.err, errCut) {
					t.Fatalf("spool err = %v", res.err)
				}
				if b, err := <-rest, <-restErr; !errors.Is(err, errCut) || len(b) >= len(data)-copyBuf+1 {
					t.Errorf("follower: %d bytes, %v; want fewer, %v", len(b), err, errCut)
				}
				if es, _ := os.ReadDir(dir); len(es) != 0 {
					t.Errorf("spool files left: %v", es)
				}
				return
			case "ctx":
				cancel()
				if b, err := <-rest, <-restErr; !errors.Is(err, context.Canceled) || len(b) >= len(data)-copyBuf+1 {
					t.Errorf("follower: %d bytes, %v", len(b), err)
				}
				pw.Close()
				res := <-done
				if res.err != nil {
					t.Fatal(res.err)
				}
				res.sp.Close()
				return
			}
			pw.Close()
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			sp := res.sp
			var wantErr error
			switch end {
			case "release":
				sp.Release()
				sp.Abort(errCut) // too late: no effect
			case "abort":
				sp.Abort(errCut)
				sp.Release() // too late: no effect
				wantErr = errCut
			case "close":
				wantErr = ErrSpoolClosed
			}
			if end == "close" {
				sp.Close()
			}
			b, err := <-rest, <-restErr
			sp.Close()
			if !errors.Is(err, wantErr) && !(err == nil && wantErr == nil) {
				t.Fatalf("follower err = %v, want %v", err, wantErr)
			}
			if wantErr == nil && !bytes.Equal(b, data[copyBuf-1:]) {
				t.Errorf("follower read %d bytes, want %d", len(b), len(data)-copyBuf+1)
			}
			if wantErr != nil && len(b) > len(data)-copyBuf { // never the held-back byte
				t.Errorf("follower read %d bytes before %v, want at most %d", len(b), err, len(data)-copyBuf)
			}
			if es, _ := os.ReadDir(dir); len(es) != 0 {
				t.Errorf("spool files left: %v", es)
			}
		})
	}
}

// TestServeTransferFollow checks the agent's side of a followed upload: a
// chunked GET whose body is whole only when the spool was released.
func TestServeTransferFollow(t *testing.T) {
	s := &Service{log: slog.New(slog.DiscardHandler), xfers: transfers{m: map[string]*transfer{}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.ServeTransfer(w, r, strings.TrimPrefix(r.URL.Path, TransferPath)); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	data := pattern(copyBuf + 1000)
	for _, release := range []bool{true, false} {
		sp, err := NewLiveSpool(t.TempDir(), bytes.NewReader(data), 1<<30, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr := s.xfers.add(&transfer{follow: sp}, time.Minute)
		req, _ := http.NewRequest("GET", srv.URL+TransferPath+tr.id, nil)
		req.Header.Set(protocol.TokenHeader, tr.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 {
			t.Errorf("release %v: status %d, length %d, encoding %v", release, resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
		}
		// The first block arrives before the spool is released (the
		// rest may wait in the server's write buffer).
		got := make([]byte, copyBuf)
		if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, data[:copyBuf]) {
			t.Fatalf("release %v: first bytes: %v", release, err)
		}
		if release {
			sp.Release()
		} else {
			sp.Abort(errCut)
		}
		rest, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case release && (err != nil || !bytes.Equal(rest, data[copyBuf:])):
			t.Errorf("released: rest %q, %v", rest, err)
		case !release && (err == nil || len(rest) >= len(data)-copyBuf):
			t.Errorf("aborted: rest %q, err %v; want a broken body", rest, err)
		}
		sp.Close()
		s.xfers.remove(tr)
	}
}
