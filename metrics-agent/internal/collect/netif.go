package collect

import (
	"fmt"
	"net"
	"strings"

	"github.com/agentfleet/libagent/protocol"
)

// netInterfaces lists the interfaces through package net, which asks the
// kernel (netlink, GetAdaptersAddresses, sysctl) on every OS.
func netInterfaces() ([]protocol.HMInterface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make([]protocol.HMInterface, 0, len(ifs))
	for _, it := range ifs {
		h := protocol.HMInterface{Index: it.Index, Name: it.Name, MTU: it.MTU, MAC: it.HardwareAddr.String()}
		if it.Flags != 0 {
			h.Flags = strings.Split(it.Flags.String(), "|")
		}
		addrs, err := it.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", it.Name, err)
		}
		for _, a := range addrs {
			h.Addrs = append(h.Addrs, a.String())
		}
		out = append(out, h)
	}
	return out, nil
}
