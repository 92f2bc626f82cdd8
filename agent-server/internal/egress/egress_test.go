package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		entry, err string
	}{
		{"10.0.0.0/33", `"10.0.0.0/33": not a CIDR`},
		{"10.0.0.0/x", `"10.0.0.0/x": not a CIDR`},
		{"*", `"*": not a CIDR, an address, a host name or *.domain`},
		{"a.*.com", `"a.*.com": not a CIDR, an address, a host name or *.domain`},
		{"user@host", `"user@host": not a CIDR, an address, a host name or *.domain`},
		{"host:80", `"host:80": not a CIDR, an address, a host name or *.domain`},
		{"", `"": not a CIDR, an address, a host name or *.domain`},
		{"a..b", `"a..b": not a CIDR, an address, a host name or *.domain`},
	} {
		if _, err := New(nil, []string{tc.entry}); err == nil || err.Error() != tc.err {
			t.Errorf("%q: %v, want %s", tc.entry, err, tc.err)
		}
	}
	if _, err := New([]string{"Loopback", "*.Example.COM.", "192.0.2.1", "2001:db8::/32", "::ffff:10.0.0.0/104"}, DefaultDeny); err != nil {
		t.Error(err)
	}
}

func TestCheck(t *testing.T) {
	def, _ := New(nil, DefaultDeny)
	strict, _ := New([]string{"repo.example.com", "*.mirror.example.org", "192.0.2.0/24"}, append([]string{"bad.mirror.example.org", "192.0.2.66"}, DefaultDeny...))
	tests := []struct {
		p    *Policy
		host string
		addr string // "" = check the host alone
		ok   bool
	}{
		{def, "example.com", "93.184.216.34", true},
		{def, "example.com", "10.1.2.3", true}, // private ranges are allowed unless listed
		{def, "localhost", "127.0.0.1", false},
		{def, "rebound.example", "127.0.0.1", false}, // a public name resolving to loopback
		{def, "x", "127.255.255.254", false},
		{def, "x", "::1", false},
		{def, "x", "::ffff:127.0.0.1", false},
		{def, "x", "0.0.0.0", false},
		{def, "x", "::", false},
		{def, "x", "169.254.169.254", false},
		{def, "x", "169.254.1.1", false},
		{def, "x", "fe80::1%eth0", false},
		{def, "x", "fd00:ec2::254", false},
		{def, "x", "100.100.100.200", false},
		{def, "metadata.google.internal", "", false},
		{def, "METADATA.google.internal.", "", false},
		{def, "127.0.0.1", "", false},
		{def, "[::1]", "", false},
		{def, "2001:db8::1", "2001:db8::1", true},
		{strict, "repo.example.com", "198.51.100.7", true},
		{strict, "REPO.example.com", "198.51.100.7", true},
		{strict, "a.mirror.example.org", "198.51.100.8", true},
		{strict, "mirror.example.org", "198.51.100.8", false}, // *.domain is below it only
		{strict, "bad.mirror.example.org", "198.51.100.8", false},
		{strict, "other.example.com", "198.51.100.9", false},
		{strict, "other.example.com", "192.0.2.10", true}, // allowed by address
		{strict, "other.example.com", "192.0.2.66", false},
		{strict, "repo.example.com", "127.0.0.1", false}, // deny wins over an allowed name
		{strict, "192.0.2.10", "", true},
		{strict, "192.0.2.66", "", false},
	}
	for _, tt := range tests {
		byName, err := tt.p.CheckHost(tt.host)
		if err == nil && tt.addr != "" {
			err = tt.p.CheckAddr(netip.MustParseAddr(tt.addr), byName)
		}
		if err == nil && tt.addr == "" && !byName {
			err = errors.New("not allowed by name")
		}
		if (err == nil) != tt.ok {
			t.Errorf("%s / %s: %v, want ok=%v", tt.host, tt.addr, err, tt.ok)
		}
		if err != nil && tt.addr != "" && !errors.Is(err, ErrDenied) && err.Error() != "not allowed by name" {
			t.Errorf("%s / %s: %v is not ErrDenied", tt.host, tt.addr, err)
		}
	}
	var zero Policy
	if _, err := zero.CheckHost("localhost"); err != nil {
		t.Errorf("zero policy: %v", err)
	}
}

// serve answers on ln until the test ends and counts the requests.
func serve(t *testing.T, ln net.Listener, h http.HandlerFunc) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); h(w, r) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &n
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	return ln
}

// The address is checked where it is dialled: a name that resolves to a
// denied address, and a redirect to one, are refused before anything is
// sent to it.
func TestClientDialAndRedirect(t *testing.T) {
	lnA := listen(t, "127.0.0.1:0")
	lnB := listen(t, "127.0.0.2:0") // Linux routes all of 127/8 to lo
	hitsB := serve(t, lnB, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("secret")) })
	urlB := "http://" + lnB.Addr().String() + "/"
	hitsA := serve(t, lnA, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.Redirect(w, r, urlB, http.StatusFound)
	})
	_, portA, _ := net.SplitHostPort(lnA.Addr().String())
	urlA := "http://" + lnA.Addr().String()
	for _, tc := range []struct {
		name        string
		allow, deny []string
		url         string
		err         string // "" = fetched
		redirect    bool   // a redirect was refused
	}{
		{"allowed", nil, []string{"127.0.0.2"}, urlA + "/ok", "", false},
		{"redirect to a denied address", nil, []string{"127.0.0.2"}, urlA + "/go", "127.0.0.2 is in a denied range", true},
		{"redirect out of the allow list", []string{"127.0.0.1"}, nil, urlA + "/go", "127.0.0.2 is not in an allowed range", true},
		{"a denied name does not deny an address", nil, []string{"127.0.0.2.nip.test"}, urlA + "/go", "", false},
		{"a name resolving to loopback", []string{"localhost"}, DefaultDeny, "http://localhost:" + portA + "/ok", "127.0.0.1 is in a denied range", false},
		{"default deny", nil, DefaultDeny, urlA + "/ok", "127.0.0.1 is in a denied range", false},
	} {
		p, err := New(tc.allow, tc.deny)
		if err != nil {
			t.Fatal(err)
		}
		before := hitsB.Load()
		c := p.Client(5, 0)
		req, _ := http.NewRequestWithContext(context.Background(), "GET", tc.url, nil)
		resp, err := c.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want ErrDenied %q", tc.name, err, tc.err)
		case tc.err != "" && hitsB.Load() != before:
			t.Errorf("%s: the denied server was reached", tc.name)
		}
		var de *DeniedError
		if tc.err != "" && (!errors.As(err, &de) || (de.Redirect != "") != tc.redirect) {
			t.Errorf("%s: %#v, want a DeniedError with redirect %t", tc.name, de, tc.redirect)
		}
	}
	if hitsA.Load() == 0 {
		t.Error("the allowed server was never reached")
	}
}

// FuzzPolicy: any list either fails to parse or gives a policy that never
// panics, and the default deny list always covers loopback, link-local and
// unspecified addresses whatever is allowed.
func FuzzPolicy(f *testing.F) {
	f.Add("loopback,10.0.0.0/8", "*.example.com", "127.0.0.1", "example.com")
	f.Add("", "metadata", "169.254.169.254", "metadata.google.internal")
	f.Add("::ffff:0:0/96", "", "::ffff:127.0.0.1", "[::1]")
	f.Add("*.a.b,c", "x", "fe80::1%lo", "a.b")
	f.Fuzz(func(t *testing.T, allow, deny, addr, host string) {
		p, err := New(strings.Split(allow, ","), strings.Split(deny, ","))
		if err == nil {
			byName, _ := p.CheckHost(host)
			if a, err := netip.ParseAddr(addr); err == nil {
				_ = p.CheckAddr(a, byName)
			}
		}
		q, err := New(strings.Split(allow, ","), DefaultDeny)
		if err != nil {
			return
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		u := a.Unmap()
		if (u.IsLoopback() || u.IsLinkLocalUnicast() || u.IsUnspecified()) && q.CheckAddr(a, true) == nil {
			t.Fatalf("%s allowed with the default deny list (allow %q)", addr, allow)
		}
		if byName, err := q.CheckHost(addr); err == nil && byName && (u.IsLoopback() || u.IsUnspecified()) {
			t.Fatalf("literal host %s allowed", addr)
		}
	})
}
