package execsvc

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// TransferPath is the path prefix of one-shot transfer URLs; the last
// element is the transfer id, the secret token travels in the X-Token
// header.
const TransferPath = "/api/transfer/"

// ErrTransferAborted: the side waiting for a PUT body gave up before it
// was consumed.
var ErrTransferAborted = errors.New("transfer aborted by the server")

// copyBuf is the buffer of file copies: large, for loopback throughput.
const copyBuf = 256 << 10

// transfer is one one-shot URL: a GET of src (upload to an agent) or a
// PUT whose body goes to the waiting download (put).
type transfer struct {
	id, token string
	expires   time.Time
	src       io.ReaderAt
	size      int64
	follow    *Spool // a spool still filling, served chunked as it grows
	// open streams a file opened when the agent asks (Offer).
	open func() (io.ReadCloser, int64, error)
	put  chan *incoming
	gone chan struct{} // closed when the waiting side gives up
}

// incoming is a PUT body handed to the download that waits for it; done
// receives the result of consuming it.
type incoming struct {
	body   io.Reader
	length int64 // -1: unknown
	done   chan error
}

type transfers struct {
	mu sync.Mutex
	m  map[string]*transfer
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on a broken system source)
	return hex.EncodeToString(b)
}

// add registers a transfer valid for ttl and returns it.
func (x *transfers) add(t *transfer, ttl time.Duration) *transfer {
	t.id = randHex(16)
	tok := make([]byte, 32)
	_, _ = rand.Read(tok)
	t.token = base64.RawURLEncoding.EncodeToString(tok)
	t.expires = time.Now().Add(ttl)
	t.gone = make(chan struct{})
	x.mu.Lock()
	defer x.mu.Unlock()
	now := time.Now()
	for id, o := range x.m { // expired ones never used
		if now.After(o.expires) {
			delete(x.m, id)
		}
	}
	x.m[t.id] = t
	return t
}

// take consumes a transfer: single use, unexpired, token compared in
// constant time. A wrong token does not consume it.
func (x *transfers) take(id, token string) (*transfer, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t, ok := x.m[id]
	if !ok {
		return nil, ErrTransferNotFound
	}
	if time.Now().After(t.expires) {
		delete(x.m, id)
		return nil, ErrTransferNotFound
	}
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(t.token)) != 1 {
		return nil, ErrTransferToken
	}
	delete(x.m, id)
	return t, nil
}

// remove forgets t (used or not) and releases a PUT waiting on it.
func (x *transfers) remove(t *transfer) {
	x.mu.Lock()
	delete(x.m, t.id)
	x.mu.Unlock()
	select {
	case <-t.gone:
	default:
		close(t.gone)
	}
}

func (x *transfers) closeAll() {
	x.mu.Lock()
	list := make([]*transfer, 0, len(x.m))
	for _, t := range x.m {
		list = append(list, t)
	}
	x.mu.Unlock()
	for _, t := range list {
		x.remove(t)
	}
}

// Offer registers a one-shot GET of a file that open opens when the agent
// asks (streamed, never held in memory: a package of the server's
// repository). It returns the transfer's path and token, and withdraw,
// which forgets it if unused.
func (s *Service) Offer(open func() (io.ReadCloser, int64, error)) (uri, token string, withdraw func()) {
	t := s.xfers.add(&transfer{open: open}, s.o.TransferTTL)
	return TransferPath + t.id, t.token, func() { s.xfers.remove(t) }
}

// Pending returns the number of transfer URLs not used yet.
func (s *Service) Pending() int {
	s.xfers.mu.Lock()
	defer s.xfers.mu.Unlock()
	return len(s.xfers.m)
}

// ServeTransfer answers an agent's request of a one-shot URL (id is the
// path element after TransferPath): GET serves an upload's file, PUT
// hands its body to the waiting download and answers 204 once consumed.
// The GET of a spool still filling (StartUpload) is chunked; when the
// spool fails, ServeTransfer panics with http.ErrAbortHandler so that the
// agent sees a broken body rather than a short one.
// Errors (nothing written yet): ErrTransferNotFound (unknown, used or
// expired), ErrTransferToken (X-Token missing or wrong),
// ErrTransferAborted, or the request context's error.
func (s *Service) ServeTransfer(w http.ResponseWriter, r *http.Request, id string) error {
	t, err := s.xfers.take(id, r.Header.Get(protocol.TokenHeader))
	if err != nil {
		return err
	}
	switch {
	case r.Method == http.MethodGet && t.follow != nil:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, copyBuf)
		if _, err := io.CopyBuffer(struct{ io.Writer }{w}, t.follow.follow(r.Context()), buf); err != nil {
			s.log.Info("execsvc: transfer GET broken off", "transfer", t.id, "err", err)
			// Without a Content-Length only a missing last chunk tells
			// the agent that the body is not whole.
			panic(http.ErrAbortHandler)
		}
		return nil
	case r.Method == http.MethodGet && t.open != nil:
		body, size, err := t.open()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTransferAborted, err)
		}
		defer body.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		if size >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		}
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, copyBuf)
		if _, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{body}, buf); err != nil {
			s.log.Info("execsvc: transfer GET broken off", "transfer", t.id, "err", err)
			panic(http.ErrAbortHandler) // the agent must not take a short body for the file
		}
		return nil
	case r.Method == http.MethodGet && t.src != nil:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(t.size, 10))
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, copyBuf)
		// Hide WriterTo/ReaderFrom so the large buffer is used.
		if _, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{io.NewSectionReader(t.src, 0, t.size)}, buf); err != nil {
			s.log.Warn("execsvc: transfer GET ended early", "transfer", t.id, "err", err)
		}
		return nil
	case r.Method == http.MethodPut && t.put != nil:
		inc := &incoming{body: r.Body, length: r.ContentLength, done: make(chan error, 1)}
		timer := time.NewTimer(time.Until(t.expires))
		defer timer.Stop()
		select {
		case t.put <- inc:
		case <-t.gone:
			return ErrTransferAborted
		case <-timer.C:
			return ErrTransferAborted
		case <-r.Context().Done():
			return r.Context().Err()
		}
		if err := <-inc.done; err != nil {
			return fmt.Errorf("%w: %v", ErrTransferAborted, err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return ErrTransferNotFound
}
