package collect

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentfleet/libagent/protocol"
)

// ErrUnsupported is wrapped by the warnings of figures this OS or host does
// not provide.
var ErrUnsupported = errors.New("not supported on this system")

// Roots locates the file trees the Linux collectors read. Tests point them at
// fixture trees; an agent in a container may point them at the host's
// (/host/proc, ...). Other operating systems ignore them except Etc, which
// darwin reads resolv.conf and passwd from.
type Roots struct {
	Proc string // /proc
	Sys  string // /sys
	Etc  string // /etc
	Dev  string // /dev: resolves /dev/mapper and /dev/disk/by-* mount sources
}

// DefaultRoots returns the roots of the running host.
func DefaultRoots() Roots {
	return Roots{Proc: "/proc", Sys: "/sys", Etc: "/etc", Dev: "/dev"}
}

// FSStat is what statfs reports about a mounted file system.
type FSStat struct {
	Total, Free, Avail uint64 // bytes; Avail is what an unprivileged user may use
	Files, FilesFree   uint64 // inodes
}

// Options configures a Collector. The zero value of each field selects the
// default.
type Options struct {
	Roots Roots            // default DefaultRoots()
	Now   func() time.Time // default time.Now

	// Statfs reports on the file system mounted at path (a path on the
	// running host, not under Roots). Default: statfs(2) / gopsutil.
	Statfs func(path string) (FSStat, error)
	// Interfaces lists the network interfaces. Default: package net.
	Interfaces func() ([]protocol.HMInterface, error)

	// ProcessQPS and ConnsQPS limit the /proc/<pid> directories visited per
	// second (task.process.qps_limit, task.conns.qps_limit); 0 = unlimited.
	ProcessQPS, ConnsQPS int
	// ShareWindow is how long a process snapshot is reused by later callers
	// (default 1s; negative: never reused).
	ShareWindow time.Duration
}

// Warning is a figure that could not be collected; the report carries
// everything else.
type Warning struct {
	Field string // dotted name of the missing part, e.g. "usage.cpu.load"
	Err   error
}

func (w Warning) Error() string { return w.Field + ": " + w.Err.Error() }

// Unwrap returns the cause.
func (w Warning) Unwrap() error { return w.Err }

// warns accumulates the warnings of one call.
type warns []Warning

func (w *warns) add(field string, err error) {
	*w = append(*w, Warning{Field: field, Err: err})
}

func (w *warns) addf(field, format string, args ...any) {
	w.add(field, fmt.Errorf(format, args...))
}

// Collector collects the metrics-agent's categories. Create it with New.
type Collector struct {
	roots       Roots
	now         func() time.Time
	statfs      func(string) (FSStat, error)
	interfaces  func() ([]protocol.HMInterface, error)
	shareWindow time.Duration
	procLimit   *rate.Limiter
	connsLimit  *rate.Limiter

	// hooks replaced by tests
	fileTime func(path string) (time.Time, error) // birth time, else mtime

	usageMu sync.Mutex
	usage   usageState // previous usage sample

	snapMu sync.Mutex
	snap   *snapshot // latest process snapshot
	users  userCache
}

// New returns a Collector.
func New(opts Options) *Collector {
	c := &Collector{
		roots:       opts.Roots,
		now:         opts.Now,
		statfs:      opts.Statfs,
		interfaces:  opts.Interfaces,
		shareWindow: opts.ShareWindow,
		procLimit:   newLimiter(opts.ProcessQPS),
		connsLimit:  newLimiter(opts.ConnsQPS),
		fileTime:    fileTime,
	}
	if c.roots == (Roots{}) {
		c.roots = DefaultRoots()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.statfs == nil {
		c.statfs = statfs
	}
	if c.interfaces == nil {
		c.interfaces = netInterfaces
	}
	if c.shareWindow == 0 {
		c.shareWindow = time.Second
	}
	return c
}

func newLimiter(qps int) *rate.Limiter {
	if qps <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(qps), qps)
}

func (c *Collector) proc(elem ...string) string {
	return filepath.Join(append([]string{c.roots.Proc}, elem...)...)
}

func (c *Collector) sys(elem ...string) string {
	return filepath.Join(append([]string{c.roots.Sys}, elem...)...)
}

func (c *Collector) etc(elem ...string) string {
	return filepath.Join(append([]string{c.roots.Etc}, elem...)...)
}

// Request selects the categories of one Dynamic call (hm_dynamic_req).
type Request struct {
	Usage, Process, Connections, Temperatures bool

	Top   int      // process list: keep the N heaviest (cpu, then rss); 0 = all
	Kinds []string // connection kinds (tcp, tcp4, tcp6, udp, udp4, udp6, unix); empty = all
}

// RequestFrom converts the wire request; unknown categories are ignored.
func RequestFrom(r protocol.HMDynamicReq) Request {
	q := Request{Top: r.Top, Kinds: r.AConns}
	for _, k := range r.Req {
		switch k {
		case protocol.HMReqUsage:
			q.Usage = true
		case protocol.HMReqProcess:
			q.Process = true
		case protocol.HMReqConnections:
			q.Connections = true
		case protocol.HMReqTemperatures:
			q.Temperatures = true
		}
	}
	return q
}

// Dynamic collects the requested categories into one type-33 payload. When
// both processes and connections are asked for, one /proc walk serves both.
// A canceled ctx stops a rate-limited walk early; what was gathered is kept
// and the cancellation is a warning.
func (c *Collector) Dynamic(ctx context.Context, req Request) (protocol.HMDynamicRep, []Warning) {
	var rep protocol.HMDynamicRep
	var ws []Warning
	rep.Begin = c.now()
	if req.Usage {
		u, w := c.Usage(ctx)
		rep.Usage = &u
		ws = append(ws, w...)
	}
	if req.Process || req.Connections {
		var w warns
		kinds := parseKinds(req.Kinds, &w)
		lim := c.connsLimit
		if req.Process {
			lim = c.procLimit
		}
		snap := c.snapshot(ctx, lim, &w)
		if req.Process {
			rep.Process = c.processList(snap, req.Top, &w)
		}
		if req.Connections {
			rep.Connections = c.connList(snap, kinds, &w)
		}
		ws = append(ws, w...)
	}
	if req.Temperatures {
		t, w := c.Temperatures(ctx)
		rep.Temperatures = t
		ws = append(ws, w...)
	}
	rep.End = c.now()
	return rep, ws
}
