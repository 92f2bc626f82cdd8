package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/agentfleet/jkframe/syncbuf"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/natstest"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/internal/testca"
)

// tlsMember is clusterMember serving HTTPS with a certificate for
// 127.0.0.1 issued by ca, advertising https://, and trusting the members'
// certificates issued by the CA of the bundle trust (cluster.tls_ca). Its
// client trusts ca; its log goes to log (when not nil).
func tlsMember(t *testing.T, dsn, natsURL, id string, ca *testca.CA, trust string, log io.Writer) *testServer {
	t.Helper()
	addr := freeAddr(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	ts := startServer(t, serverSpec{addr: addr, mysql: dsn, log: log, mod: func(c *config.Config) {
		clusterConfig(c, natsURL, id, addr)
		c.TLS.Cert, c.TLS.Key = cert, key
		c.Cluster.Advertise, c.Cluster.TLSCA = "https://"+addr, trust
	}})
	pool, err := config.CertPool(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	ts.url = "https://" + addr
	ts.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return ts
}

// TestClusterForwardingTLS: members serving HTTPS with certificates of a
// private CA forward to each other when cluster.tls_ca is that CA: a call
// for an agent connected to s2, made to s1, is answered by s2. A member
// whose cluster.tls_ca is another CA refuses s2's certificate: the same
// call made to it answers 503 (the member does not answer), and its log
// says why.
func TestClusterForwardingTLS(t *testing.T) {
	ca, other := testca.New(t, "cluster CA"), testca.New(t, "another CA")
	dsn, natsURL := mysqlDSN(t), "nats://"+natstest.Addr(t)
	var log1, log3 syncbuf.Buffer
	s1 := tlsMember(t, dsn, natsURL, "s1", ca, ca.CertFile, &log1)
	s2 := tlsMember(t, dsn, natsURL, "s2", ca, ca.CertFile, nil)
	s3 := tlsMember(t, dsn, natsURL, "s3", ca, other.CertFile, &log3)

	startAgent(t, "wss://"+s2.addr, agentSpec{id: "t1", tlsCA: ca.CertFile})
	s2.waitOnline("t1")
	s1.waitOnline("t1") // s1 reads the agent's member from the store
	s3.waitOnline("t1")

	const reqID = "fwd-tls-1"
	if e := s1.doHeader("GET", "/api/foo/t1", opToken, map[string]string{"X-Request-Id": reqID}); e.status != 200 {
		t.Fatalf("call made to s1, forwarded to s2 over TLS: %d %s", e.status, e.Msg)
	}
	// s2 answered it: its audit entry says s1 forwarded it.
	list, _, err := s1.srv.Store().ListAudit(context.Background(), store.AuditFilter{Agent: "t1", Paging: store.Paging{Size: 100}})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(e store.AuditEntry) bool { return e.RequestID == reqID })
	if i < 0 || list[i].Status != 200 || !strings.Contains(list[i].Remote, "forwarded by member s1") {
		t.Errorf("audit entries of t1: %+v", list)
	}
	if l := linesWith([]byte(log1.String()), "forward:"); l != "" {
		t.Errorf("s1 logged about forwarding: %s", l)
	}

	e := s3.do("GET", "/api/foo/t1", opToken, nil)
	if e.status != 503 || !strings.Contains(e.Msg, "agent t1 is connected to member s2, which does not answer") {
		t.Fatalf("call made to s3, which does not trust s2's CA: %d %s", e.status, e.body)
	}
	if l := linesWith([]byte(log3.String()), "forward: the agent's member does not answer"); !strings.Contains(l, "x509: certificate signed by unknown authority") {
		t.Errorf("s3's log does not say why s2 was refused: %q", l)
	}
}
