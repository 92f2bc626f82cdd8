package sim

import "net"

// localIP extracts the IP of a host:port address.
func localIP(addr string) net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}
