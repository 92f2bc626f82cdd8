// Package egress decides which addresses the server may connect to when it
// fetches a URL an API caller gave it (POST /api/file/{id}/upload?url=),
// so that the URL cannot make the server reach its own loopback, the cloud
// metadata service or other places only it can see (SSRF).
//
// A Policy has a deny list and an optional allow list. Each entry is a CIDR
// ("10.0.0.0/8"), an address ("192.0.2.7"), a host name ("repo.example.com",
// matched exactly) or a host pattern ("*.example.com": any name below it),
// or one of the keywords loopback, link-local, unspecified, metadata and
// private, which stand for the ranges in [Keywords]. A connection is
// refused when its host name or the address actually dialled matches a
// deny entry; with an allow list, it must also match an allow entry (by
// name or by address). Deny wins.
//
// The address is checked where it is dialled, after name resolution
// (net.Dialer.Control): a name that resolves to a denied address, DNS
// rebinding between a check and the dial, and redirects (each one dials
// again) are all caught. IPv4-mapped IPv6 addresses are checked as IPv4.
// The client never uses a proxy: through one, the dialled address would be
// the proxy's.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrDenied is what every refusal is (errors.Is); errors.As finds its
// *DeniedError.
var ErrDenied = errors.New("address not allowed")

// DeniedError is a refusal of the policy.
type DeniedError struct {
	// Reason says what was refused and why ("host h is denied").
	Reason string
	// Redirect is the URL (without user info) of the redirect that was
	// refused; "" when the refused address was not a redirect's.
	Redirect string
}

func denied(format string, args ...any) *DeniedError {
	return &DeniedError{Reason: fmt.Sprintf(format, args...)}
}

func (e *DeniedError) Error() string { return ErrDenied.Error() + ": " + e.Reason }

// Is makes a DeniedError an ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// DefaultDeny is the deny list of a server that configures none.
var DefaultDeny = []string{"loopback", "link-local", "unspecified", "metadata"}

// Keywords are the named entries of a list.
var Keywords = map[string][]string{
	"loopback":    {"127.0.0.0/8", "::1/128"},
	"link-local":  {"169.254.0.0/16", "fe80::/10"},
	"unspecified": {"0.0.0.0/8", "::/128"},
	// Cloud instance metadata services: AWS, GCP, Azure, OpenStack
	// (169.254.169.254, also inside link-local), AWS over IPv6, Alibaba
	// Cloud, and the names GCP gives its service.
	"metadata": {"169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32", "metadata.google.internal", "metadata.goog"},
	"private":  {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"},
}

// Policy is a parsed pair of lists. The zero value allows everything.
type Policy struct {
	allow, deny list
}

type list struct {
	prefixes []netip.Prefix
	names    []string // exact, lower case, no trailing dot
	suffixes []string // ".example.com" for "*.example.com"
}

func (l *list) empty() bool { return len(l.prefixes)+len(l.names)+len(l.suffixes) == 0 }

func (l *list) matchName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, n := range l.names {
		if h == n {
			return true
		}
	}
	for _, s := range l.suffixes {
		if strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

func (l *list) matchAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// New parses the lists; an error names the bad entry.
func New(allow, deny []string) (*Policy, error) {
	p := &Policy{}
	if err := p.allow.add(allow); err != nil {
		return nil, err
	}
	if err := p.deny.add(deny); err != nil {
		return nil, err
	}
	return p, nil
}

func (l *list) add(entries []string) error {
	for _, raw := range entries {
		e := strings.TrimSpace(raw)
		if exp, ok := Keywords[strings.ToLower(e)]; ok {
			if err := l.add(exp); err != nil {
				return err
			}
			continue
		}
		if err := l.addOne(e); err != nil {
			return fmt.Errorf("%q: %w", raw, err)
		}
	}
	return nil
}

func (l *list) addOne(e string) error {
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return errors.New("not a CIDR")
		}
		l.prefixes = append(l.prefixes, netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())).Masked())
		return nil
	}
	if a, err := netip.ParseAddr(e); err == nil {
		a = a.Unmap().WithZone("")
		l.prefixes = append(l.prefixes, netip.PrefixFrom(a, a.BitLen()))
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(e), ".")
	wild := strings.HasPrefix(name, "*.")
	check := strings.TrimPrefix(name, "*.")
	if check == "" || strings.ContainsAny(check, "*/:@ ") || strings.Contains(check, "..") {
		return errors.New("not a CIDR, an address, a host name or *.domain")
	}
	if wild {
		l.suffixes = append(l.suffixes, "."+check)
	} else {
		l.names = append(l.names, name)
	}
	return nil
}

// CheckHost checks a URL's host (name or literal address) before any
// dial: deny entries by name and address, and, with an allow list, whether
// a name entry allows it outright. allowed reports that; when false, the
// dialled address must still match an allow entry (CheckAddr).
func (p *Policy) CheckHost(host string) (allowedByName bool, err error) {
	if p.deny.matchName(host) {
		return false, denied("host %s is denied", host)
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if err := p.CheckAddr(a, false); err != nil {
			return false, err
		}
		return p.allow.empty() || p.allow.matchAddr(a), nil
	}
	return p.allow.empty() || p.allow.matchName(host), nil
}

// CheckAddr checks an address about to be dialled; allowedByName is
// CheckHost's verdict for the host name it came from.
func (p *Policy) CheckAddr(a netip.Addr, allowedByName bool) error {
	if p.deny.matchAddr(a) {
		return denied("%s is in a denied range", a.Unmap())
	}
	if !p.allow.empty() && !allowedByName && !p.allow.matchAddr(a) {
		return denied("%s is not in an allowed range", a.Unmap())
	}
	return nil
}

// DialContext dials addr ("host:port") like a net.Dialer, refusing every
// address the policy denies: the host name is checked first, then each
// address it resolves to, at the moment it is dialled.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	byName, err := p.CheckHost(host)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return denied("cannot check address %q", address)
		}
		return p.CheckAddr(ap.Addr(), byName)
	}}
	return d.DialContext(ctx, network, addr)
}

// Client returns an HTTP client that dials through the policy, uses no
// proxy, and follows fewer than maxRedirects http(s) redirects, each
// checked again.
func (p *Policy) Client(maxRedirects int, responseHeaderTimeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           p.DialContext,
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: responseHeaderTimeout,
			TLSHandshakeTimeout:   30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return errors.New("redirect to a non-http URL")
			}
			if _, err := p.CheckHost(req.URL.Hostname()); err != nil {
				var de *DeniedError
				if errors.As(err, &de) {
					c := *de
					c.Redirect = redact(req.URL)
					err = &c
				}
				return fmt.Errorf("redirect to %s: %w", redact(req.URL), err)
			}
			return nil
		},
	}
}

// redact drops a URL's user info (a password must not reach a log or an
// answer).
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
