package sim

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// spreadDialer dials a loopback server from n source addresses, 127.0.0.1
// to 127.0.0.n, in turn. The kernel picks each connection's port from one
// range per (source, destination) pair, and the search for a free one grows
// with the connections already open to the same pair and those in
// TIME_WAIT from a previous run: at 15,000 agents on one pair it cost more
// CPU than the server's whole handshake. IP_BIND_ADDRESS_NO_PORT lets the
// kernel choose the port at connect time, knowing the destination, instead
// of reserving one at bind time for the address alone.
func spreadDialer(n int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialers := make([]*net.Dialer, n)
	for i := range dialers {
		dialers[i] = &net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))},
			Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
				})
				if err != nil {
					return err
				}
				return serr
			},
		}
	}
	var next atomic.Uint32
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := dialers[int(next.Add(1)-1)%n]
		return d.DialContext(ctx, network, addr)
	}
}
