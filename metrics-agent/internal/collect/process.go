package collect

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/agentfleet/libagent/protocol"
)

// Processes returns the process list, the top heaviest when top > 0 (by CPU
// usage, then RSS), else every process by pid. It takes a process snapshot
// or reuses one younger than Options.ShareWindow.
func (c *Collector) Processes(ctx context.Context, top int) ([]protocol.HMProcess, []Warning) {
	var w warns
	s := c.snapshot(ctx, c.procLimit, &w)
	return c.processList(s, top, &w), w
}

// Connections returns the sockets of the given kinds (tcp, tcp4, tcp6, udp,
// udp4, udp6, unix; empty = all) with their owning pid and fd, from a
// process snapshot as Processes does. Unknown kinds are warnings.
func (c *Collector) Connections(ctx context.Context, kinds []string) ([]protocol.HMConnection, []Warning) {
	var w warns
	k := parseKinds(kinds, &w)
	s := c.snapshot(ctx, c.connsLimit, &w)
	return c.connList(s, k, &w), w
}

func (c *Collector) snapshot(ctx context.Context, lim limiter, w *warns) *snapshot {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	now := c.now()
	if c.snap != nil && c.shareWindow > 0 && now.Sub(c.snap.at) >= 0 && now.Sub(c.snap.at) < c.shareWindow {
		return c.snap
	}
	s := c.takeSnapshot(ctx, lim, c.snap, w)
	// A walk cut short by its caller's context is that caller's partial
	// answer only: shared, it would hand other callers a truncated list, and
	// as the next CPU baseline it would lose the processes it skipped.
	if !s.partial {
		c.snap = s
	}
	return s
}

// limiter is *rate.Limiter; an interface so that the OS files need not
// import it.
type limiter interface {
	Wait(ctx context.Context) error
}

// rank orders processes for a top-N list: heaviest CPU, then RSS, then pid.
func rank(list []protocol.HMProcess, top int) []protocol.HMProcess {
	if top <= 0 || top >= len(list) {
		slices.SortFunc(list, func(a, b protocol.HMProcess) int { return cmp.Compare(a.ID, b.ID) })
		return list
	}
	slices.SortFunc(list, func(a, b protocol.HMProcess) int {
		return cmp.Or(cmp.Compare(b.CPUUsage, a.CPUUsage), cmp.Compare(b.RSS, a.RSS), cmp.Compare(a.ID, b.ID))
	})
	return list[:top]
}

// Connection kinds, as bits.
const (
	kindTCP4 = 1 << iota
	kindTCP6
	kindUDP4
	kindUDP6
	kindUnix
	kindAll = kindTCP4 | kindTCP6 | kindUDP4 | kindUDP6 | kindUnix
)

// connTypes are the HMConnection.Type values, by kind bit position. Every
// AF_UNIX socket is "unix" (v1 called some of them "file": AF_FILE is
// AF_UNIX).
var connTypes = [...]string{"tcp4", "tcp6", "udp4", "udp6", "unix"}

func parseKinds(kinds []string, w *warns) int {
	if len(kinds) == 0 {
		return kindAll
	}
	k := 0
	for _, s := range kinds {
		switch s {
		case "tcp":
			k |= kindTCP4 | kindTCP6
		case "tcp4":
			k |= kindTCP4
		case "tcp6":
			k |= kindTCP6
		case "udp":
			k |= kindUDP4 | kindUDP6
		case "udp4":
			k |= kindUDP4
		case "udp6":
			k |= kindUDP6
		case "unix":
			k |= kindUnix
		case "all":
			k |= kindAll
		default:
			w.addf("conns.kinds", "unknown connection kind %q", s)
		}
	}
	return k
}

// formatAddr writes ip:port ([ip]:port for IPv6); "" for an unset remote
// end (listening or unconnected sockets).
func formatAddr(a netip.AddrPort, remote bool) string {
	if remote && a.Port() == 0 && a.Addr().IsUnspecified() {
		return ""
	}
	return a.String()
}

func cpuPercent(ticks uint64, seconds float64) protocol.F2 {
	if seconds <= 0 {
		return 0
	}
	return protocol.F2(float64(ticks) / clockTicks / seconds * 100)
}

// clockTicks is USER_HZ, the unit of the times of /proc/<pid>/stat: 100 on
// every Linux architecture.
const clockTicks = 100

func errorsCount(field string, n int, first error, w *warns) {
	if n > 0 {
		w.add(field, fmt.Errorf("%d processes, first: %w", n, first))
	}
}
