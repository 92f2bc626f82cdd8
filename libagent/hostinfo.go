package libagent

import (
	"context"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/agentfleet/libagent/protocol"
)

// hostFacts are the parts of come that do not depend on the connection.
// They are collected once at start-up; a failure leaves a field empty
// rather than keeping the agent off the server.
type hostFacts struct {
	hostname, os, platform, platformVersion, kernel, arch, cpuModel string
	cores, memory                                                   uint64
}

func collectHostFacts(ctx context.Context) hostFacts {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f := hostFacts{os: runtime.GOOS, arch: runtime.GOARCH}
	f.hostname, _ = os.Hostname()
	if hi, err := host.InfoWithContext(ctx); err == nil {
		if hi.Hostname != "" {
			f.hostname = hi.Hostname
		}
		f.platform, f.platformVersion, f.kernel = hi.Platform, hi.PlatformVersion, hi.KernelVersion
		if hi.KernelArch != "" {
			f.arch = hi.KernelArch
		}
	}
	if ci, err := cpu.InfoWithContext(ctx); err == nil && len(ci) > 0 {
		f.cpuModel = ci[0].ModelName
	}
	if n, err := cpu.CountsWithContext(ctx, false); err == nil && n > 0 {
		f.cores = uint64(n)
	} else {
		f.cores = uint64(runtime.NumCPU())
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		f.memory = vm.Total
	}
	return f
}

// macOf returns the hardware address of the interface holding ip, "" when
// none does (loopback has none).
func macOf(ip net.IP) string {
	if ip == nil {
		return ""
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return ifc.HardwareAddr.String()
			}
		}
	}
	return ""
}

// come builds the hello for a connection whose local address is local.
func (rt *Runtime) come(local *net.TCPAddr) *protocol.Come {
	f := rt.facts
	c := &protocol.Come{
		ID:              rt.wantID(),
		Name:            rt.agent.Name,
		Version:         rt.agent.Version,
		HostName:        f.hostname,
		OS:              f.os,
		Platform:        f.platform,
		PlatformVersion: f.platformVersion,
		KernelVersion:   f.kernel,
		Arch:            f.arch,
		CPU:             f.cpuModel,
		CPUCore:         f.cores,
		Memory:          f.memory,
		Caps:            rt.caps(),
		Labels:          rt.labels,
	}
	if local != nil {
		c.IP = local.IP
		c.MAC = macOf(local.IP)
	}
	if rt.state != nil {
		_, c.Secret = rt.state.Identity()
	}
	c.Journal = rt.jid
	return c
}
