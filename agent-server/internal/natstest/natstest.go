// Package natstest finds the NATS JetStream server of the tests: the one
// at TEST_NATS_ADDR (default 127.0.0.1:4222). When it does not answer, a
// test fails in CI (CI=true or REQUIRE_NATS=1: CI must never pass by
// skipping) and is skipped with a message on a developer machine.
package natstest

import (
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// DefaultAddr is where the tests look for NATS when TEST_NATS_ADDR is unset.
const DefaultAddr = "127.0.0.1:4222"

// Required reports whether a missing server fails the tests.
func Required() bool { return os.Getenv("CI") == "true" || os.Getenv("REQUIRE_NATS") == "1" }

// Addr returns host:port of the test server, or ends the test.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("TEST_NATS_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		return addr
	}
	unavailable(t, addr, err)
	return ""
}

func unavailable(t testing.TB, addr string, err error) {
	t.Helper()
	const how = "start it (.ci/nats-up, or nats-server -js) or point TEST_NATS_ADDR at one"
	if Required() {
		t.Fatalf("natstest: NATS JetStream at %s is required (CI=true or REQUIRE_NATS=1) but does not answer: %v; %s", addr, err, how)
		return
	}
	t.Skipf("natstest: skipping, NATS JetStream at %s does not answer: %v; %s (set REQUIRE_NATS=1 to fail instead)", addr, err, how)
}

// Proxy forwards TCP connections to a target until cut: then it closes
// them and refuses new ones until restored (a NATS outage as the client
// sees it). Safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to target on a loopback port; it ends with the
// test.
func NewProxy(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL is the nats:// URL of the proxy.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second) // under mu: Retarget waits
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut cuts (true) or restores (false) the way to the target.
func (p *Proxy) Cut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

// Retarget sends the connections made from now on to target (a load
// balancer that moved on to another server); those open stay.
func (p *Proxy) Retarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Cut(true)
	p.wg.Wait()
}
