package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/natstest"
)

// roundRobin is the shared address in front of the members: a TCP proxy
// sending each new connection to the next backend in turn.
func roundRobin(t *testing.T, backends ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", backends[i%len(backends)])
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			wg.Go(func() { pipe(in, out) })
			wg.Go(func() { pipe(out, in) })
		}
	})
	return ln.Addr().String()
}

// dialAgentWS tries an agent upgrade at addr and returns its HTTP status.
func dialAgentWS(addr string) (int, http.Header, error) {
	h := http.Header{"Authorization": {"Bearer " + agentToken}}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws://"+addr+"/ws/agent", h)
	if c != nil {
		c.Close()
	}
	if resp == nil {
		return 0, nil, err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// TestClusterLeaseLostClosesSessions: s1 is cut from the database; once
// its lease has ended it refuses agent handshakes (503 with Retry-After)
// and, s2 being live (its lease announcements reach s1 over NATS), closes
// its agent's session, which reconnects through the shared address to s2.
// When the database is back s1 admits handshakes again.
func TestClusterLeaseLostClosesSessions(t *testing.T) {
	dsn := mysqlDSN(t)
	natsURL := "nats://" + natstest.Addr(t)
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := natstest.NewProxy(t, mc.Addr) // a plain TCP proxy, cut at will
	mc.Addr = strings.TrimPrefix(proxy.URL(), "nats://")
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startServer(t, serverSpec{addr: addrA, mysql: mc.FormatDSN(), mod: func(c *config.Config) {
		clusterConfig(c, natsURL, "s1", addrA)
		c.Cluster.LeaseLostClose = utils.Duration(time.Second)
	}})
	b := startServer(t, serverSpec{addr: addrB, mysql: dsn, mod: func(c *config.Config) { clusterConfig(c, natsURL, "s2", addrB) }})
	front := roundRobin(t, addrA, addrB) // the first connection goes to s1
	startAgent(t, front, agentSpec{id: "l1"})
	at := func(member string) func() error {
		return func() error {
			list := memberAgents(t, b, "size=1000")
			i := slices.IndexFunc(list, func(x memberAgent) bool { return x.ID == "l1" })
			if i < 0 || !list[i].IsOnline || list[i].Member != member {
				return fmt.Errorf("s2 lists %+v, want l1 online at %s", list, member)
			}
			return nil
		}
	}
	eventually.NoError(t, "l1 online at s1", at("s1"))

	proxy.Cut(true)
	eventually.NoError(t, "l1 moved to s2", at("s2"))
	if _, ok := a.srv.Hub().Session("l1"); ok {
		t.Error("l1 still has a session at s1")
	}
	if code, h, err := dialAgentWS(addrA); code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("a handshake at s1 while its lease has ended: %d %v %v, want 503 with Retry-After", code, h, err)
	}
	e := a.do("GET", "/metrics", "", nil)
	if !regexp.MustCompile(`(?m)^agentserver_cluster_lease_lost_sessions_closed_total 1$`).Match(e.body) {
		t.Errorf("closes not counted:\n%s", linesWith(e.body, "agentserver_cluster_lease_lost"))
	}

	proxy.Cut(false)
	eventually.NoError(t, "s1 admits handshakes again", func() error {
		if code, _, err := dialAgentWS(addrA); code != http.StatusSwitchingProtocols {
			return fmt.Errorf("handshake at s1: %d %v", code, err)
		}
		return nil
	})
}
