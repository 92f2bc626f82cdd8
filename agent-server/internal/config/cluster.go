package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/utils"
)

// Cluster holds the multi-server settings (cluster.* keys, docs/cluster.md).
// A server is in a cluster when any of Name, NATSURL, Advertise or Member is
// set; then Name, NATSURL and Advertise are required and the store must be
// MySQL/MariaDB, shared by every member.
type Cluster struct {
	// Name is the cluster's name, the same on every member; it scopes the
	// member rows in the database and the NATS subjects.
	Name string `kv:"name"`
	// Member is this server's id in the cluster, unique per member
	// (default: the id key).
	Member string `kv:"member"`
	// NATSURL: the NATS servers, comma-separated nats:// or tls:// URLs;
	// NATSCreds, NATSTokenFile and NATSTLSCA as logging.nats.*.
	NATSURL       string `kv:"nats_url"`
	NATSCreds     string `kv:"nats_creds"`
	NATSTokenFile string `kv:"nats_token_file"`
	NATSTLSCA     string `kv:"nats_tls_ca"`
	// Advertise is the address the other members (and agents they
	// redirect) reach this server at: http(s)://host:port or host:port,
	// made a URL by resolve.
	Advertise string `kv:"advertise"`
	// TLSCA is a PEM CA bundle verifying the other members' certificates
	// when this member forwards an API call to one served over https
	// (system roots when empty). Load checks that it holds a certificate;
	// outside a cluster it is refused (it would do nothing).
	TLSCA string `kv:"tls_ca"`
	// Lease is how long a member row stays valid without a renewal (renewed
	// every third of it); MemberGrace how long an expired member stays
	// listed before it is removed.
	Lease       utils.Duration `kv:"lease"`
	MemberGrace utils.Duration `kv:"member_grace"`
	// LeaseLostClose is the window over which a member whose lease ended
	// (while another member's is live) closes its agents' sessions, so
	// that they reconnect to a member that can hold them; 0 keeps them.
	LeaseLostClose utils.Duration `kv:"lease_lost_close"`
	// DrainPeriod is how long a member stopped by SIGTERM (or the service
	// manager) drains before it stops: handshakes redirected to the other
	// members, tasks handed over, sessions closed spread over the period;
	// 0 stops without draining. Also the period of a drain asked through
	// the API without one.
	DrainPeriod utils.Duration `kv:"drain_period"`
}

// Defaults of the cluster.* keys.
const (
	DefaultClusterLease       = utils.Duration(15 * time.Second)
	DefaultClusterMemberGrace = utils.Duration(10 * time.Minute)
	DefaultClusterLeaseLost   = utils.Duration(30 * time.Second)
)

// Enabled reports whether this server is configured as a cluster member.
func (c *Cluster) Enabled() bool {
	return c.Name != "" || c.NATSURL != "" || c.Advertise != "" || c.Member != ""
}

var (
	clusterNameRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	clusterMemberRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)
)

// ErrClusterNeedsMySQL is wrapped (with ErrInvalid) by the error refusing
// a cluster on the embedded SQLite store.
var ErrClusterNeedsMySQL = errors.New("a cluster (cluster.* is set) needs store.driver = mysql: " +
	"every member shares one MySQL/MariaDB database, and the embedded SQLite store belongs to one server")

// CheckCluster refuses a cluster on the SQLite store. Load runs it (with
// the checks of every cluster.* key); server.New runs it again, for
// configurations built in code.
func (c *Config) CheckCluster() error {
	if !c.Cluster.Enabled() {
		return nil
	}
	if c.Store.Driver != "mysql" {
		return fmt.Errorf("store.driver: %w: %w", ErrInvalid, ErrClusterNeedsMySQL)
	}
	return nil
}

// MemberID is this server's id in the cluster.
func (c *Config) MemberID() string {
	if c.Cluster.Member != "" {
		return c.Cluster.Member
	}
	return c.ID
}

func (c *Config) checkCluster(add func(error)) {
	k := &c.Cluster
	if k.Lease < utils.Duration(3*time.Second) || k.Lease > utils.Duration(5*time.Minute) {
		add(invalid("cluster.lease", "must be between 3s and 5m"))
	}
	if k.MemberGrace < k.Lease || k.MemberGrace > utils.Duration(30*24*time.Hour) {
		add(invalid("cluster.member_grace", "must be between cluster.lease and 30d"))
	}
	if k.LeaseLostClose < 0 || k.LeaseLostClose > utils.Duration(time.Hour) {
		add(invalid("cluster.lease_lost_close", "must be between 0 (keep the sessions) and 1h"))
	}
	if k.DrainPeriod < 0 || k.DrainPeriod > utils.Duration(10*time.Minute) {
		add(invalid("cluster.drain_period", "must be between 0 (stop without draining) and 10m"))
	}
	if !k.Enabled() {
		if k.TLSCA != "" {
			add(invalid("cluster.tls_ca", "only used by a cluster member (cluster.name, cluster.nats_url, cluster.advertise): "+
				"it verifies the other members' certificates"))
		}
		return
	}
	if err := c.CheckCluster(); err != nil {
		add(err)
	}
	if k.Name == "" {
		add(invalid("cluster.name", "required in a cluster (cluster.* is set): the same name on every member"))
	} else if !clusterNameRE.MatchString(k.Name) {
		add(invalid("cluster.name", "must be 1 to 64 of A-Z a-z 0-9 _ -"))
	}
	if m := c.MemberID(); !clusterMemberRE.MatchString(m) {
		key := "cluster.member"
		if k.Member == "" {
			key = "cluster.member (defaults to id)"
		}
		add(invalid(key, "%q: must be 1 to 64 of A-Z a-z 0-9 . _ - (not starting with .)", m))
	}
	if k.NATSURL == "" {
		add(invalid("cluster.nats_url", "required in a cluster: the members talk over NATS"))
	}
	checkNATS("cluster.nats_url", k.NATSURL, "cluster.nats_creds or cluster.nats_token_file", add)
	if k.NATSCreds != "" && k.NATSTokenFile != "" {
		add(invalid("cluster.nats_creds", "cluster.nats_creds and cluster.nats_token_file exclude each other"))
	}
	if k.Advertise == "" {
		add(invalid("cluster.advertise", "required in a cluster: the address the other members reach this server at (http://host:port)"))
	} else if _, err := advertiseURL(k.Advertise, c.TLSEnabled()); err != nil {
		add(invalid("cluster.advertise", "%v", err))
	}
}

// checkClusterFiles checks the files of the cluster.* keys once their
// paths are resolved: cluster.tls_ca must hold a PEM certificate.
func (c *Config) checkClusterFiles() error {
	if c.Cluster.TLSCA == "" {
		return nil
	}
	if _, err := CertPool(c.Cluster.TLSCA); err != nil {
		return invalid("cluster.tls_ca", "%v", err)
	}
	return nil
}

// CertPool reads the PEM CA bundle at path into a pool; a file without a
// PEM certificate is an error.
func CertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

// advertiseURL checks an advertised address and returns it as a URL
// (http://host:port, https:// with TLS).
func advertiseURL(s string, tls bool) (string, error) {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	hostport := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			return "", fmt.Errorf("%q: the scheme must be http or https", s)
		case u.Scheme != scheme && tls:
			return "", fmt.Errorf("%q: the server serves HTTPS (tls.cert, tls.key): advertise https://", s)
		case u.Scheme != scheme:
			return "", fmt.Errorf("%q: https needs tls.cert and tls.key (the server serves plain HTTP)", s)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
			return "", fmt.Errorf("%q: only scheme, host and port", s)
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("%q: want http(s)://host:port or host:port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q: the port must be between 1 and 65535", s)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		return "", fmt.Errorf("%q: an address the other members can reach, not %q", s, host)
	}
	if net.ParseIP(host) == nil && !validHost(host) {
		return "", fmt.Errorf("%q: %q is not an IP address or host name", s, host)
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// checkNATS checks a comma-separated list of NATS URLs of key; credsKeys
// names where credentials go instead of the URL.
func checkNATS(key, urls, credsKeys string, add func(error)) {
	if urls == "" {
		return
	}
	for _, u := range strings.Split(urls, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host == "" || (p.Scheme != "nats" && p.Scheme != "tls") {
			add(invalid(key, "%q is not a nats://host:port or tls://host:port URL", strings.TrimSpace(u)))
		} else if p.User != nil {
			add(invalid(key, "credentials in the URL are not accepted (they would show wherever the config is): use %s", credsKeys))
		}
	}
}
