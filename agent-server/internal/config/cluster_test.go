package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/testca"
)

// clusterConf is a valid cluster member's configuration; cases add keys.
const clusterConf = "id = s1\nstore.driver = mysql\nstore.dsn = root@tcp(db:3306)/fleet\n" +
	"cluster.name = prod\ncluster.nats_url = nats://n1:4222, tls://n2:4222\ncluster.advertise = 10.0.0.5:13081\n"

// The cluster.* cases join TestParse's table (and FuzzParse's seeds).
func init() {
	parseTests = append(parseTests, []parseCase{
		{"cluster off by default", "id = a\n", "", func(c Config) bool {
			return !c.Cluster.Enabled() && c.Cluster.Lease == DefaultClusterLease && c.Cluster.MemberGrace == DefaultClusterMemberGrace && c.Cluster.LeaseLostClose == DefaultClusterLeaseLost && c.CheckCluster() == nil
		}, ""},
		{"cluster", clusterConf + "cluster.nats_creds = c.creds\ncluster.lease = 30s\ncluster.member_grace = 1h\n", "", func(c Config) bool {
			k := c.Cluster
			return k.Enabled() && k.Name == "prod" && c.MemberID() == "s1" && k.Advertise == "http://10.0.0.5:13081" &&
				k.NATSCreds == "/base/c.creds" && k.Lease == utils.Duration(30*time.Second) && k.MemberGrace == utils.Duration(time.Hour)
		}, ""},
		{"cluster member", clusterConf + "cluster.member = s1.eu-west\n", "", func(c Config) bool { return c.MemberID() == "s1.eu-west" }, ""},
		{"cluster advertise url", clusterConf[:len(clusterConf)-len("10.0.0.5:13081\n")] + "http://as1.example.com:80/\n", "", func(c Config) bool {
			return c.Cluster.Advertise == "http://as1.example.com:80"
		}, ""},
		{"cluster advertise tls", clusterConf + "tls.cert = c.pem\ntls.key = k.pem\n", "", func(c Config) bool { return c.Cluster.Advertise == "https://10.0.0.5:13081" }, ""},
		{"cluster one key turns it on", "id = a\ncluster.nats_url = nats://x:4222\nstore.driver = mysql\nstore.dsn = u@tcp(h)/d\n", "cluster.name: invalid config: required in a cluster", nil, ""},
		{"cluster needs nats", "id = a\nstore.driver = mysql\nstore.dsn = u@tcp(h)/d\ncluster.name = c\ncluster.advertise = h:1\n", "cluster.nats_url: invalid config: required in a cluster", nil, ""},
		{"cluster needs advertise", "id = a\nstore.driver = mysql\nstore.dsn = u@tcp(h)/d\ncluster.name = c\ncluster.nats_url = nats://h:4222\n", "cluster.advertise: invalid config: required in a cluster", nil, ""},
		{"cluster name chars", strings.Replace(clusterConf, "cluster.name = prod", "cluster.name = pr.od", 1), "cluster.name: invalid config: must be 1 to 64 of A-Z a-z 0-9 _ -", nil, ""},
		{"cluster member from id", strings.Replace(clusterConf, "id = s1", "id = \"my server\"", 1), `cluster.member (defaults to id): invalid config: "my server": must be 1 to 64`, nil, ""},
		{"cluster nats scheme", strings.Replace(clusterConf, "nats://n1:4222", "http://n1:4222", 1), `cluster.nats_url: invalid config: "http://n1:4222" is not a nats://host:port`, nil, ""},
		{"cluster nats user", strings.Replace(clusterConf, "nats://n1:4222", "nats://u:p@n1:4222", 1), "cluster.nats_url: invalid config: credentials in the URL are not accepted (they would show wherever the config is): use cluster.nats_creds or cluster.nats_token_file", nil, ""},
		{"cluster creds and token", clusterConf + "cluster.nats_creds = a\ncluster.nats_token_file = b\n", "cluster.nats_creds: invalid config: cluster.nats_creds and cluster.nats_token_file exclude each other", nil, ""},
		{"cluster advertise unspecified", strings.Replace(clusterConf, "10.0.0.5:13081", "0.0.0.0:13081", 1), `cluster.advertise: invalid config: "0.0.0.0:13081": an address the other members can reach, not "0.0.0.0"`, nil, ""},
		{"cluster advertise no port", strings.Replace(clusterConf, "10.0.0.5:13081", "10.0.0.5", 1), `cluster.advertise: invalid config: "10.0.0.5": want http(s)://host:port or host:port`, nil, ""},
		{"cluster advertise port", strings.Replace(clusterConf, "10.0.0.5:13081", "10.0.0.5:0", 1), `cluster.advertise: invalid config: "10.0.0.5:0": the port must be between 1 and 65535`, nil, ""},
		{"cluster advertise scheme", strings.Replace(clusterConf, "10.0.0.5:13081", "ws://10.0.0.5:1", 1), `cluster.advertise: invalid config: "ws://10.0.0.5:1": the scheme must be http or https`, nil, ""},
		{"cluster advertise https without tls", strings.Replace(clusterConf, "10.0.0.5:13081", "https://h:1", 1), `cluster.advertise: invalid config: "https://h:1": https needs tls.cert and tls.key`, nil, ""},
		{"cluster advertise http with tls", strings.Replace(clusterConf, "10.0.0.5:13081", "http://h:1", 1) + "tls.cert = c\ntls.key = k\n", `cluster.advertise: invalid config: "http://h:1": the server serves HTTPS`, nil, ""},
		{"cluster advertise path", strings.Replace(clusterConf, "10.0.0.5:13081", "http://h:1/api", 1), `cluster.advertise: invalid config: "http://h:1/api": only scheme, host and port`, nil, ""},
		{"cluster advertise host", strings.Replace(clusterConf, "10.0.0.5:13081", "a_b:1", 1), `cluster.advertise: invalid config: "a_b:1": "a_b" is not an IP address or host name`, nil, ""},
		{"cluster lease", clusterConf + "cluster.lease = 1s\n", "cluster.lease: invalid config: must be between 3s and 5m", nil, ""},
		{"cluster grace", clusterConf + "cluster.lease = 1m\ncluster.member_grace = 30s\n", "cluster.member_grace: invalid config: must be between cluster.lease and 30d", nil, ""},
		{"cluster lease lost close", clusterConf + "cluster.lease_lost_close = 2h\n", "cluster.lease_lost_close: invalid config: must be between 0 (keep the sessions) and 1h", nil, ""},
		{"cluster drain period", clusterConf + "cluster.drain_period = 20s\n", "", func(c Config) bool { return c.Cluster.DrainPeriod == utils.Duration(20*time.Second) }, ""},
		{"cluster drain period off by default", clusterConf, "", func(c Config) bool { return c.Cluster.DrainPeriod == 0 }, ""},
		{"cluster drain period range", clusterConf + "cluster.drain_period = 11m\n", "cluster.drain_period: invalid config: must be between 0 (stop without draining) and 10m", nil, ""},
		{"cluster tls_ca outside a cluster", "id = a\ncluster.tls_ca = ca.pem\n", "cluster.tls_ca: invalid config: only used by a cluster member", nil, ""},
		{"cluster unknown key", clusterConf + "cluster.nats = x\n", "t.conf:7: cluster.nats: unknown key", nil, ""},
	}...)
}

// TestClusterOnSQLite: a cluster on SQLite is refused with an error that
// says why, both from the file and from a Config built in code.
func TestClusterOnSQLite(t *testing.T) {
	_, err := Parse([]byte(strings.Replace(clusterConf, "store.driver = mysql\nstore.dsn = root@tcp(db:3306)/fleet\n", "", 1)), "t.conf", Options{})
	if !errors.Is(err, ErrClusterNeedsMySQL) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse: %v, want ErrClusterNeedsMySQL", err)
	}
	c := Default()
	c.ID, c.Cluster.Name = "a", "prod"
	if err := c.CheckCluster(); !errors.Is(err, ErrClusterNeedsMySQL) ||
		!strings.Contains(err.Error(), "the embedded SQLite store belongs to one server") {
		t.Fatalf("CheckCluster: %v", err)
	}
	c.Store.Driver = "mysql"
	if err := c.CheckCluster(); err != nil {
		t.Fatalf("CheckCluster on mysql: %v", err)
	}
}

// TestClusterTLSCA: cluster.tls_ca is resolved against the base dir and
// must name a file holding a PEM certificate; the errors name the key.
func TestClusterTLSCA(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "test CA")
	good, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	_, keyFile := ca.Issue(t, "127.0.0.1")
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"ca.pem": good, "empty.pem": nil, "text.pem": []byte("not a certificate\n"), "key.pem": key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, value, err string
	}{
		{"good relative", "ca.pem", ""},
		{"good absolute", ca.CertFile, ""},
		{"missing file", "nope.pem", "cluster.tls_ca: invalid config: open " + filepath.Join(dir, "nope.pem") + ": "},
		{"empty file", "empty.pem", "cluster.tls_ca: invalid config: " + filepath.Join(dir, "empty.pem") + ": no PEM certificate found"},
		{"not PEM", "text.pem", "cluster.tls_ca: invalid config: " + filepath.Join(dir, "text.pem") + ": no PEM certificate found"},
		{"a key, no certificate", "key.pem", "cluster.tls_ca: invalid config: " + filepath.Join(dir, "key.pem") + ": no PEM certificate found"},
		{"a directory", ".", "cluster.tls_ca: invalid config: "}, // the OS's words differ
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(clusterConf+"cluster.tls_ca = "+tt.value+"\n"), "t.conf", Options{BaseDir: dir})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tt.value); filepath.IsAbs(tt.value) && c.Cluster.TLSCA != tt.value || !filepath.IsAbs(tt.value) && c.Cluster.TLSCA != want {
				t.Errorf("TLSCA = %q", c.Cluster.TLSCA)
			}
			if _, err := CertPool(c.Cluster.TLSCA); err != nil {
				t.Errorf("CertPool: %v", err)
			}
		})
	}
}
