package hostmetrics

import (
	"math"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// The recent history: per host, the usage of the last RecentWindow in
// memory, one sample per RecentStep at most, for the console's charts. It
// is fed by the pushed usage reports only (never by a request the API makes
// to an agent) and kept in a fixed-size ring per host, allocated at the
// host's first sample: RecentWindow / RecentStep samples of recentSampleSize
// bytes (with the defaults, 1 h / 15 s = 240 samples, 6,720 bytes per host).
// A host whose newest sample is older than RecentWindow is dropped by the
// next Sweep; hosts beyond MaxRecentHosts are not tracked (counted).

// recentSample is one kept sample, 28 bytes: the percentages and the load
// are fixed-point hundredths (0.01 % resolution, load up to 655.35), the
// throughputs float32 bytes per second.
type recentSample struct {
	t              uint32 // unix seconds (server clock)
	cpu, mem, disk uint16 // %, hundredths
	load1          uint16 // hundredths
	rd, wr         float32
	rx, tx         float32 // NaN: unknown (first sample, counters reset)
}

// recentSampleSize is the size of recentSample in bytes (checked by a test).
const recentSampleSize = 28

// usagePoint is one usage report reduced to what the charts show.
type usagePoint struct {
	cpu, mem, disk, load1 float64
	rd, wr                float64 // bytes/s, summed over partitions
	rxTotal, txTotal      uint64  // counters since boot, summed over non-loopback interfaces
}

func pointFromWire(u *protocol.HMUsage) usagePoint {
	p := usagePoint{cpu: f(u.CPU.Usage), mem: f(u.Memory.Usage), load1: f(u.CPU.Load1)}
	for _, d := range u.Partitions {
		p.disk = max(p.disk, f(d.Usage))
		p.rd += f(d.ReadPerSecond)
		p.wr += f(d.WritePerSecond)
	}
	for _, n := range u.Interface {
		if !loopback(n.Name) {
			p.rxTotal += n.BytesRecv
			p.txTotal += n.BytesSent
		}
	}
	return p
}

func pointFromAPI(u *Usage) usagePoint {
	p := usagePoint{cpu: u.CPU.Usage, mem: u.Memory.Usage, load1: u.CPU.Load1}
	for _, d := range u.Partitions {
		p.disk = max(p.disk, d.Usage)
		p.rd += d.ReadPerSecond
		p.wr += d.WritePerSecond
	}
	for _, n := range u.Interface {
		if !loopback(n.Name) {
			p.rxTotal += n.BytesRecv
			p.txTotal += n.BytesSent
		}
	}
	return p
}

// loopback: lo (Linux), lo0 (BSD, macOS), "Loopback Pseudo-Interface 1"
// (Windows). Their traffic never leaves the host.
func loopback(name string) bool {
	return name == "lo" || name == "lo0" || strings.HasPrefix(name, "Loopback")
}

// hundredths stores a non-negative value in 0.01 units, saturating.
func hundredths(v float64) uint16 {
	switch {
	case !(v > 0): // NaN and negatives
		return 0
	case v >= 655.35:
		return math.MaxUint16
	}
	return uint16(math.Round(v * 100))
}

// rate is the per-second increase of a counter over dt seconds; NaN when it
// cannot be known (no previous sample, or the counter went back: a reboot
// or an interface that left).
func rate(prev, cur uint64, dt float64, known bool) float32 {
	if !known || dt <= 0 || cur < prev {
		return float32(math.NaN())
	}
	return float32(float64(cur-prev) / dt)
}

// hostRing is one host's recent samples.
type hostRing struct {
	buf              []recentSample // len = capacity once allocated
	head, n          int            // next write position, samples held
	lastT            uint32         // time of the newest sample
	rxTotal, txTotal uint64         // counters at the newest sample
	haveTotals       bool
}

func (h *hostRing) add(s recentSample, p usagePoint) {
	if h.n > 0 {
		dt := float64(s.t - h.lastT)
		s.rx = rate(h.rxTotal, p.rxTotal, dt, h.haveTotals)
		s.tx = rate(h.txTotal, p.txTotal, dt, h.haveTotals)
	} else {
		s.rx, s.tx = float32(math.NaN()), float32(math.NaN())
	}
	h.buf[h.head] = s
	h.head = (h.head + 1) % len(h.buf)
	h.n = min(h.n+1, len(h.buf))
	h.lastT, h.rxTotal, h.txTotal, h.haveTotals = s.t, p.rxTotal, p.txTotal, true
}

// recent is the in-memory history of every host. Safe for concurrent use.
type recent struct {
	step     time.Duration
	window   time.Duration
	size     int // samples per host
	maxHosts int
	dropped  func() // a host not tracked (MaxRecentHosts)

	mu    sync.Mutex
	hosts map[string]*hostRing
}

func newRecent(window, step time.Duration, maxHosts int, dropped func()) *recent {
	if window <= 0 || step <= 0 {
		return nil
	}
	return &recent{step: step, window: window, size: int(window / step), maxHosts: maxHosts, dropped: dropped, hosts: map[string]*hostRing{}}
}

// add keeps p as the host's sample at now unless its previous sample is
// less than one step old.
func (r *recent) add(agentID string, now time.Time, p usagePoint) {
	if r == nil {
		return
	}
	t := uint32(max(0, min(now.Unix(), math.MaxUint32)))
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hosts[agentID]
	if h == nil {
		if len(r.hosts) >= r.maxHosts {
			r.dropped()
			return
		}
		h = &hostRing{buf: make([]recentSample, max(1, r.size))}
		r.hosts[agentID] = h
	} else if h.n > 0 && t < h.lastT+uint32(r.step/time.Second) {
		return
	}
	h.add(recentSample{t: t, cpu: hundredths(p.cpu), mem: hundredths(p.mem), disk: hundredths(p.disk), load1: hundredths(p.load1),
		rd: float32(p.rd), wr: float32(p.wr)}, p)
}

// since returns the host's samples at or after since, oldest first, and
// whether the host is tracked at all.
func (r *recent) since(agentID string, since time.Time) ([]recentSample, bool) {
	if r == nil {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hosts[agentID]
	if h == nil || h.n == 0 {
		return nil, false
	}
	from := since.Unix()
	out := make([]recentSample, 0, h.n)
	for i := range h.n {
		s := h.buf[(h.head-h.n+i+len(h.buf))%len(h.buf)]
		if int64(s.t) >= from {
			out = append(out, s)
		}
	}
	return out, true
}

// sweep drops the hosts whose newest sample is older than the window.
func (r *recent) sweep(now time.Time) {
	if r == nil {
		return
	}
	cut := now.Add(-r.window).Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, h := range r.hosts {
		if int64(h.lastT) < cut {
			delete(r.hosts, id)
		}
	}
}

func (r *recent) count() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hosts)
}

// History is the payload of GET /api/metrics/{id}/history: the usage of a
// host over a time range, one column per series (the shape chart libraries
// take). A null stands for a value that cannot be known (the throughput of
// the first sample, or after the counters went back).
type History struct {
	// Source says where the samples come from: "memory" (this server's
	// recent history, one sample per Step seconds) or "store" (the stored
	// usage history, hostmetrics.history_interval apart: the host pushes
	// to another server of the cluster, or this one restarted).
	Source    string     `json:"source"`
	Step      int64      `json:"step"` // seconds between samples, at least
	Time      []int64    `json:"time"` // unix seconds
	CPU       []float64  `json:"cpu"`  // %
	Mem       []float64  `json:"mem"`  // %
	Disk      []float64  `json:"disk"` // % used of the fullest partition
	Load1     []float64  `json:"load1"`
	DiskRead  []*float64 `json:"disk_read"`  // bytes/s, all partitions
	DiskWrite []*float64 `json:"disk_write"` // bytes/s
	NetRecv   []*float64 `json:"net_recv"`   // bytes/s, all interfaces but loopback
	NetSent   []*float64 `json:"net_sent"`   // bytes/s
}

func newHistory(source string, step time.Duration, n int) *History {
	return &History{
		Source: source, Step: int64(step / time.Second),
		Time: make([]int64, 0, n), CPU: make([]float64, 0, n), Mem: make([]float64, 0, n), Disk: make([]float64, 0, n),
		Load1: make([]float64, 0, n), DiskRead: make([]*float64, 0, n), DiskWrite: make([]*float64, 0, n),
		NetRecv: make([]*float64, 0, n), NetSent: make([]*float64, 0, n),
	}
}

func (h *History) append(s recentSample) {
	pct := func(v uint16) float64 { return float64(v) / 100 }
	h.Time = append(h.Time, int64(s.t))
	h.CPU = append(h.CPU, pct(s.cpu))
	h.Mem = append(h.Mem, pct(s.mem))
	h.Disk = append(h.Disk, pct(s.disk))
	h.Load1 = append(h.Load1, pct(s.load1))
	h.DiskRead = append(h.DiskRead, num(s.rd))
	h.DiskWrite = append(h.DiskWrite, num(s.wr))
	h.NetRecv = append(h.NetRecv, num(s.rx))
	h.NetSent = append(h.NetSent, num(s.tx))
}

// num rounds a throughput to whole bytes per second; nil for NaN.
func num(v float32) *float64 {
	if v != v || math.IsInf(float64(v), 0) {
		return nil
	}
	x := math.Round(float64(v))
	return &x
}
