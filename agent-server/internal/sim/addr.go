package sim

import (
	"net"
	"net/url"
)

// localIP extracts the IP of a host:port address.
func localIP(addr string) net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}

// loopbackURL reports whether the URL's host is 127.0.0.1.
func loopbackURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Hostname() == "127.0.0.1"
}
