package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentfleet/libagent/protocol"
)

// snapshot is one walk of /proc: the processes and which process holds
// each socket.
type snapshot struct {
	at       time.Time
	procs    []procInfo
	owner    map[uint64]sockOwner // socket inode → first (lowest pid) holder
	memTotal uint64
	partial  bool // the walk stopped early (its caller's context)
}

type procInfo struct {
	pid    int32
	stat   pidStat
	status pidStatus
	cmd    []string
	cpu    protocol.F2
	socks  []uint64 // inodes of the sockets held (each counts as a connection)
}

type sockOwner struct {
	pid int32
	fd  uint32
}

// takeSnapshot walks /proc. Processes that exit meanwhile are skipped
// silently; unreadable parts (fd directories of other users' processes when
// not root) are counted into one warning per kind.
func (c *Collector) takeSnapshot(ctx context.Context, lim limiter, prev *snapshot, w *warns) *snapshot {
	s := &snapshot{at: c.now(), owner: make(map[uint64]sockOwner)}
	if b, err := os.ReadFile(c.proc("meminfo")); err != nil {
		w.add("process.mem", err)
	} else if m, err := parseMeminfo(b); err != nil {
		w.add("process.mem", err)
	} else {
		s.memTotal = m["MemTotal"]
	}
	uptime := -1.0
	if b, err := os.ReadFile(c.proc("uptime")); err == nil {
		uptime, _ = parseUptime(b)
	}
	prevCPU := make(map[int32]procInfo)
	if prev != nil {
		for _, p := range prev.procs {
			prevCPU[p.pid] = p
		}
	}
	elapsed := 0.0
	if prev != nil {
		elapsed = s.at.Sub(prev.at).Seconds()
	}

	pids, err := c.pids()
	if err != nil {
		w.add("process", err)
		return s
	}
	var nFD, nRead int
	var errFD, errRead error
	buf := make([]byte, 0, 4096)
	for _, pid := range pids {
		if err := lim.Wait(ctx); err != nil {
			w.addf("process", "walk stopped after %d of %d processes: %w", len(s.procs), len(pids), err)
			s.partial = true
			break
		}
		p, err := c.readProc(pid, &buf)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ESRCH) {
				nRead++
				errRead = cmpErr(errRead, err)
			}
			continue
		}
		ticks := p.stat.UTime + p.stat.STime
		if old, ok := prevCPU[pid]; ok && old.stat.StartTime == p.stat.StartTime && elapsed > 0 {
			p.cpu = cpuPercent(ticks-min(ticks, old.stat.UTime+old.stat.STime), elapsed)
		} else if uptime >= 0 {
			p.cpu = cpuPercent(ticks, uptime-float64(p.stat.StartTime)/clockTicks)
		}
		if err := c.readFDs(&p, s.owner); err != nil {
			nFD++
			errFD = cmpErr(errFD, err)
		}
		s.procs = append(s.procs, p)
	}
	errorsCount("process", nRead, errRead, w)
	errorsCount("process.fd", nFD, errFD, w)
	return s
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

func (c *Collector) pids() ([]int32, error) {
	d, err := os.Open(c.roots.Proc)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := make([]int32, 0, len(names))
	for _, n := range names {
		if n == "" || n[0] < '0' || n[0] > '9' {
			continue
		}
		if v, err := strconv.ParseInt(n, 10, 32); err == nil && v > 0 {
			out = append(out, int32(v))
		}
	}
	return out, nil
}

// readFileInto reads a small /proc file into *buf (reused across calls).
func readFileInto(path string, buf *[]byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	*buf = b
	return b, nil
}

func (c *Collector) readProc(pid int32, buf *[]byte) (procInfo, error) {
	p := procInfo{pid: pid}
	dir := c.proc(strconv.Itoa(int(pid)))
	b, err := readFileInto(dir+"/stat", buf)
	if err != nil {
		return p, err
	}
	if p.stat, err = parsePidStat(b); err != nil {
		return p, fmt.Errorf("pid %d: %w", pid, err)
	}
	if b, err = readFileInto(dir+"/status", buf); err != nil {
		return p, err
	}
	if p.status, err = parsePidStatus(b); err != nil {
		return p, fmt.Errorf("pid %d: %w", pid, err)
	}
	if b, err = readFileInto(dir+"/cmdline", buf); err != nil {
		return p, err
	}
	p.cmd = parseCmdline(b)
	if len(p.cmd) == 0 {
		p.cmd = []string{"[" + p.status.Name + "]"} // kernel thread, as ps shows it
	}
	return p, nil
}

// readFDs records the sockets process p holds.
func (c *Collector) readFDs(p *procInfo, owner map[uint64]sockOwner) error {
	dir := c.proc(strconv.Itoa(int(p.pid)), "fd")
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	// Links are read relative to the open directory: the kernel then looks
	// up one name instead of walking /proc/<pid>/fd/<n> from the root.
	dfd := int(d.Fd())
	var buf [64]byte
	for _, name := range names {
		n, err := unix.Readlinkat(dfd, name, buf[:])
		if err != nil {
			continue // closed meanwhile
		}
		ino, ok := socketInode(buf[:n])
		if !ok {
			continue
		}
		fd, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		p.socks = append(p.socks, ino)
		if o, ok := owner[ino]; !ok || p.pid < o.pid {
			owner[ino] = sockOwner{pid: p.pid, fd: uint32(fd)}
		}
	}
	return nil
}

// socketInode parses the "socket:[12345]" target of an fd link.
func socketInode(link []byte) (uint64, bool) {
	s, ok := bytes.CutPrefix(link, []byte("socket:["))
	if !ok {
		return 0, false
	}
	s, ok = bytes.CutSuffix(s, []byte("]"))
	if !ok || len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

func (c *Collector) processList(s *snapshot, top int, w *warns) []protocol.HMProcess {
	listen := c.listeners(w)
	uids := make([]uint32, len(s.procs))
	for i, p := range s.procs {
		uids[i] = p.status.UID
	}
	users := c.users.lookup(c.etc("passwd"), uids, w)
	out := make([]protocol.HMProcess, 0, len(s.procs))
	for _, p := range s.procs {
		h := protocol.HMProcess{
			ID: p.pid, ParentID: p.stat.PPid, User: users[p.status.UID], CPUUsage: p.cpu,
			RSS: p.status.RSS, VMS: p.status.VMS, Swap: p.status.Swap,
			MemoryUsage: pct(float64(p.status.RSS), float64(s.memTotal)), Cmd: p.cmd,
		}
		h.Conns = len(p.socks)
		for _, ino := range p.socks {
			if port, ok := listen[ino]; ok && !containsPort(h.Listen, port) {
				h.Listen = append(h.Listen, port)
			}
		}
		slices.Sort(h.Listen)
		out = append(out, h)
	}
	return rank(out, top)
}

func containsPort(ps []uint32, p uint32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}
