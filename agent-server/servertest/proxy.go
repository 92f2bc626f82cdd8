package servertest

import (
	"bytes"
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from a port on 127.0.0.1 to a target
// (an agent's way to the server), so that tests can break the link: Cut
// drops the live connections, Pause refuses new ones, CutResponses
// breaks the answers to some requests after a number of bytes, and Lose
// drops what the target sends.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu        sync.Mutex
	conns     []net.Conn
	paused    bool
	cutPrefix []byte
	cutAt     int64
	losing    bool
}

// NewProxy listens on a free port of 127.0.0.1 and forwards to target until
// Close.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		paused, prefix, cutAt := p.paused, p.cutPrefix, p.cutAt
		p.mu.Unlock()
		if paused {
			_ = c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() {
			// The first read holds the request line.
			buf := make([]byte, 32<<10)
			n, err := c.Read(buf)
			if err != nil {
				_ = u.Close()
				_ = c.Close()
				return
			}
			_, _ = u.Write(buf[:n])
			if cutAt > 0 && bytes.HasPrefix(buf[:n], prefix) {
				p.wg.Go(func() { _, _ = io.Copy(u, c) })
				_, _ = io.CopyN(c, u, cutAt)
				_ = c.Close()
				_ = u.Close()
				return
			}
			p.wg.Go(func() { _, _ = io.Copy(losingWriter{p, c}, u); _ = c.Close() })
			_, _ = io.Copy(u, c)
			_ = u.Close()
		})
	}
}

// Cut closes every forwarded connection (the listener stays).
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Pause makes the proxy close new connections at once (on) or forward
// them again (off).
func (p *Proxy) Pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.mu.Unlock()
}

// Lose makes the forwarded connections drop what the target sends (on),
// or pass it again (off): a link that loses messages before it breaks.
func (p *Proxy) Lose(on bool) {
	p.mu.Lock()
	p.losing = on
	p.mu.Unlock()
}

// losingWriter writes to w unless the proxy is losing.
type losingWriter struct {
	p *Proxy
	w io.Writer
}

func (l losingWriter) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	losing := l.p.losing
	l.p.mu.Unlock()
	if losing {
		return len(b), nil
	}
	return l.w.Write(b)
}

// CutResponses makes the proxy close new connections whose first bytes
// start with prefix (a request line, "GET /api/transfer/") once n bytes of
// the answer went through; n = 0 turns it off.
func (p *Proxy) CutResponses(prefix string, n int64) {
	p.mu.Lock()
	p.cutPrefix, p.cutAt = []byte(prefix), n
	p.mu.Unlock()
}

// Close stops listening, cuts the connections and waits for the
// goroutines.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
