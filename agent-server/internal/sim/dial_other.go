//go:build !linux

package sim

import (
	"context"
	"net"
)

// spreadDialer is nil off Linux: the kernel's default source address.
func spreadDialer(int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil
}
