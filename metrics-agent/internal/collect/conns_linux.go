package collect

import (
	"errors"
	"io/fs"
	"os"

	"github.com/agentfleet/libagent/protocol"
)

// sockTables are the kernel's socket tables of the collector's network
// namespace.
type sockTables struct {
	inet [4][]inetSocket // tcp, tcp6, udp, udp6
	unix []unixSocket
}

var inetFiles = [4]string{"tcp", "tcp6", "udp", "udp6"}

func (c *Collector) readTables(kinds int, w *warns) sockTables {
	var t sockTables
	for i, name := range inetFiles {
		if kinds&(1<<i) == 0 {
			continue
		}
		b, err := os.ReadFile(c.proc("net", name))
		if err != nil {
			if !(i%2 == 1 && errors.Is(err, fs.ErrNotExist)) { // IPv6 disabled
				w.add("conns."+name, err)
			}
			continue
		}
		if t.inet[i], err = parseNetIP(b); err != nil {
			w.add("conns."+name, err)
		}
	}
	if kinds&kindUnix == 0 {
		return t
	}
	if b, err := os.ReadFile(c.proc("net", "unix")); err != nil {
		w.add("conns.unix", err)
	} else if t.unix, err = parseNetUnix(b); err != nil {
		w.add("conns.unix", err)
	}
	return t
}

var unixStates = [...]string{2: "CONNECTING", 3: "ESTABLISHED", 4: "DISCONNECTING"}

func (c *Collector) connList(s *snapshot, kinds int, w *warns) []protocol.HMConnection {
	var out []protocol.HMConnection
	tables := c.readTables(kinds, w)
	for i, t := range tables.inet {
		if kinds&(1<<i) == 0 {
			continue
		}
		for _, e := range t {
			o := s.owner[e.Inode]
			h := protocol.HMConnection{FD: o.fd, Pid: o.pid, Type: connTypes[i],
				Local: formatAddr(e.Local, false), Remote: formatAddr(e.Remote, true)}
			if i <= 1 {
				if int(e.State) < len(tcpStates) {
					h.Status = tcpStates[e.State]
				}
			} else if e.State == tcpEstablished {
				h.Status = "ESTABLISHED" // a connected UDP socket
			}
			out = append(out, h)
		}
	}
	if kinds&kindUnix != 0 {
		for _, e := range tables.unix {
			o := s.owner[e.Inode]
			h := protocol.HMConnection{FD: o.fd, Pid: o.pid, Type: "unix", Local: e.Path}
			switch {
			case e.Flags&unixAcceptCon != 0:
				h.Status = "LISTEN"
			case int(e.State) < len(unixStates):
				h.Status = unixStates[e.State]
			}
			out = append(out, h)
		}
	}
	return out
}
