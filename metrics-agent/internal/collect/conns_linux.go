package collect

import (
	"errors"
	"io/fs"
	"os"

	"github.com/agentfleet/libagent/protocol"
)

var inetFiles = [4]string{"tcp", "tcp6", "udp", "udp6"}

var unixStates = [...]string{2: "CONNECTING", 3: "ESTABLISHED", 4: "DISCONNECTING"}

// connList lists the sockets of the collector's network namespace, reading
// the tables of the wanted kinds only. The tables are streamed (see
// netparse.go): a host with 50,000 TIME_WAIT sockets costs the list itself
// and no per-line garbage.
func (c *Collector) connList(s *snapshot, kinds int, w *warns) []protocol.HMConnection {
	b := connBuilder{owner: s.owner}
	nr := newNetReader(nil)
	for i, name := range inetFiles {
		if kinds&(1<<i) == 0 {
			continue
		}
		err := c.readTable(nr, name, func() error {
			return scanNetIP(nr, func(e *inetSocket) { b.addInet(i, e) })
		})
		if err != nil && !(i%2 == 1 && errors.Is(err, fs.ErrNotExist)) { // IPv6 disabled
			w.add("conns."+name, err)
		}
	}
	if kinds&kindUnix != 0 {
		if err := c.readTable(nr, "unix", func() error { return scanNetUnix(nr, b.addUnix) }); err != nil {
			w.add("conns.unix", err)
		}
	}
	return b.list()
}

// readTable opens /proc/net/<name> for scan, which reads it through nr.
func (c *Collector) readTable(nr *netReader, name string, scan func() error) error {
	f, err := os.Open(c.proc("net", name))
	if err != nil {
		return err
	}
	defer f.Close()
	nr.reset(f)
	err = scan()
	nr.reset(nil)
	return err
}

// connTextChunk is the size of the blocks the address texts are gathered
// in before they become one string; maxConnBlock the most connections
// gathered in one block of the list.
const (
	connTextChunk = 32 << 10
	maxConnBlock  = 2048
)

// connBuilder builds a connection list without knowing its length. The
// connections are gathered in blocks (64, 128, ... up to maxConnBlock), copied
// into a list of the right length at the end: the list costs twice its size
// at most, where append would allocate five times it. Their Local and Remote
// texts are written into one buffer that becomes a string each
// connTextChunk bytes or block; the connections take their texts as
// substrings of it. A socket thus costs no allocation of its own; the price
// is that one kept connection keeps its text block.
type connBuilder struct {
	owner  map[uint64]sockOwner
	blocks [][]protocol.HMConnection
	n      int    // connections in blocks
	text   []byte // texts of the connections not yet given theirs
	ends   []int  // of these: end of Local, end of Remote in text
}

func (b *connBuilder) addInet(kind int, e *inetSocket) {
	h := protocol.HMConnection{Type: connTypes[kind]}
	if kind <= 1 {
		if int(e.State) < len(tcpStates) {
			h.Status = tcpStates[e.State]
		}
	} else if e.State == tcpEstablished {
		h.Status = "ESTABLISHED" // a connected UDP socket
	}
	b.text = appendAddr(b.text, e.Local, false)
	local := len(b.text)
	b.text = appendAddr(b.text, e.Remote, true)
	b.push(h, e.Inode, local)
}

func (b *connBuilder) addUnix(e *unixSocket) {
	h := protocol.HMConnection{Type: "unix"}
	switch {
	case e.Flags&unixAcceptCon != 0:
		h.Status = "LISTEN"
	case int(e.State) < len(unixStates):
		h.Status = unixStates[e.State]
	}
	b.text = append(b.text, e.Path...)
	b.push(h, e.Inode, len(b.text))
}

// push adds h, whose texts are the end of b.text (Local ending at local),
// with the owner of the socket inode.
func (b *connBuilder) push(h protocol.HMConnection, inode uint64, local int) {
	if inode != 0 { // TIME_WAIT and other orphans: nobody holds them
		if o, ok := b.owner[inode]; ok {
			h.FD, h.Pid = o.fd, o.pid
		}
	}
	last := len(b.blocks) - 1
	if last < 0 || len(b.blocks[last]) == cap(b.blocks[last]) {
		size := 64
		if last >= 0 {
			size = min(2*cap(b.blocks[last]), maxConnBlock)
		}
		b.blocks = append(b.blocks, make([]protocol.HMConnection, 0, size))
		last++
	}
	b.blocks[last] = append(b.blocks[last], h)
	b.n++
	b.ends = append(b.ends, local, len(b.text))
	if len(b.text) >= connTextChunk || len(b.blocks[last]) == cap(b.blocks[last]) {
		b.flush()
	}
}

// flush gives the connections added since the last flush, all in the last
// block, their texts.
func (b *connBuilder) flush() {
	if len(b.ends) == 0 {
		return
	}
	s := string(b.text)
	block := b.blocks[len(b.blocks)-1]
	pending := block[len(block)-len(b.ends)/2:]
	pos := 0
	for i := range pending {
		local, remote := b.ends[2*i], b.ends[2*i+1]
		pending[i].Local, pending[i].Remote = s[pos:local], s[local:remote]
		pos = remote
	}
	b.text, b.ends = b.text[:0], b.ends[:0]
}

// list returns the connections; nil when there are none.
func (b *connBuilder) list() []protocol.HMConnection {
	b.flush()
	switch len(b.blocks) {
	case 0:
		return nil
	case 1:
		return b.blocks[0]
	}
	out := make([]protocol.HMConnection, 0, b.n)
	for i, block := range b.blocks {
		out = append(out, block...)
		b.blocks[i] = nil // garbage as soon as copied
	}
	return out
}
