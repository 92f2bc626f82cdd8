package servertest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer answers each line with itself, and "BIG" with 1000 bytes.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line == "BIG\n" {
						line = strings.Repeat("x", 1000)
					}
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	return c
}

// The proxy forwards; Cut ends the live connections, Pause refuses new
// ones, CutResponses breaks the answer to a matching request.
func TestProxy(t *testing.T) {
	p, err := NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	c := dial(t, p.Addr())
	io.WriteString(c, "hello\n")
	if got, err := bufio.NewReader(c).ReadString('\n'); got != "hello\n" {
		t.Fatalf("echo through the proxy: %q, %v", got, err)
	}
	p.Cut()
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes after Cut", n)
	}

	p.Pause(true)
	if n, err := dial(t, p.Addr()).Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes while paused", n)
	}
	p.Pause(false)

	p.CutResponses("BIG", 100)
	c = dial(t, p.Addr())
	io.WriteString(c, "BIG\n")
	if b, _ := io.ReadAll(c); len(b) != 100 {
		t.Fatalf("cut answer: %d bytes, want 100", len(b))
	}
	p.CutResponses("", 0)
	c = dial(t, p.Addr())
	io.WriteString(c, "BIG\n")
	b := make([]byte, 1000)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("whole answer after CutResponses off: %v", err)
	}
}
