package hub

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// frameConn sits between gorilla and the TCP connection so that an idle
// connection can wait for data on a shallow stack (waitReadable) instead of
// deep inside gorilla's reader, which costs a 4 KiB goroutine stack per
// agent instead of 2 KiB.
//
// It reads the socket into a pooled buffer (held only while it has unread
// bytes) and hands gorilla bytes only up to the end of the current
// WebSocket frame. So when a message has been read, gorilla's own buffer is
// empty and whatever arrived since sits here, where idle() sees it; complete
// ping and pong frames at a frame boundary are consumed here (takeControl)
// without waking gorilla at all.
type frameConn struct {
	net.Conn
	raw  syscall.RawConn // nil: no shallow wait (not plain TCP, e.g. TLS)
	buf  *[]byte         // pooled; nil when nothing is buffered
	r, w int             // unread bytes are (*buf)[r:w]
	err  error           // a read error to report once the buffer is drained
	left int64           // bytes of the current frame not handed out yet; 0 at a boundary
	hdr  [14]byte        // header bytes of a frame handed out before the header was complete
	nhdr int
}

const frameBufSize = 4096

var frameBufPool = sync.Pool{New: func() any { b := make([]byte, frameBufSize); return &b }}

func newFrameConn(c net.Conn) *frameConn {
	fc := &frameConn{Conn: c}
	if tc, ok := c.(*net.TCPConn); ok && shallowWait {
		if raw, err := tc.SyscallConn(); err == nil {
			fc.raw = raw
		}
	}
	return fc
}

// idle reports whether nothing received is buffered here.
func (c *frameConn) idle() bool { return c.buf == nil && c.err == nil }

// fill reads once from the socket into an empty buffer.
func (c *frameConn) fill() {
	if c.buf != nil || c.err != nil {
		return
	}
	b := frameBufPool.Get().(*[]byte)
	n, err := c.Conn.Read(*b)
	if n > 0 {
		c.buf, c.r, c.w = b, 0, n
	} else {
		frameBufPool.Put(b)
	}
	if err != nil {
		c.err = err
	}
}

func (c *frameConn) release() {
	if c.buf != nil && c.r == c.w {
		frameBufPool.Put(c.buf)
		c.buf = nil
	}
}

// Read implements net.Conn for gorilla, never crossing a frame boundary.
func (c *frameConn) Read(p []byte) (int, error) {
	if c.buf == nil {
		if c.err != nil {
			err := c.err
			c.err = nil
			return 0, err
		}
		c.fill()
		if c.buf == nil {
			err := c.err
			c.err = nil
			return 0, err
		}
	}
	avail := (*c.buf)[c.r:c.w]
	n := min(len(p), len(avail))
	if allow := c.allowance(avail); int64(n) > allow {
		n = int(allow)
	}
	copy(p, avail[:n])
	c.r += n
	if c.left > 0 {
		c.left -= int64(n)
	} else {
		c.nhdr += copy(c.hdr[c.nhdr:], avail[:n])
	}
	c.release()
	return n, nil
}

// allowance returns how many of the buffered bytes belong to the current
// frame. At a frame start it parses the header (from hdr and avail); while
// the header is incomplete every buffered byte is a header byte.
func (c *frameConn) allowance(avail []byte) int64 {
	if c.left > 0 {
		return c.left
	}
	var h [14]byte
	k := copy(h[:], c.hdr[:c.nhdr])
	k += copy(h[k:], avail)
	total, ok := frameLen(h[:k])
	if !ok {
		return int64(len(avail))
	}
	c.left = total - int64(c.nhdr)
	c.nhdr = 0
	return c.left
}

// frameLen returns the length of the frame whose header starts b (header
// plus payload), or false when b does not hold the whole header.
func frameLen(b []byte) (int64, bool) {
	if len(b) < 2 {
		return 0, false
	}
	hl := 2
	n := uint64(b[1] & 0x7f)
	switch n {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	if b[1]&0x80 != 0 {
		hl += 4
	}
	if len(b) < hl {
		return 0, false
	}
	switch n {
	case 126:
		n = uint64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		n = binary.BigEndian.Uint64(b[2:10])
	}
	const maxLen = 1 << 60 // gorilla's read limit refuses such a frame anyway
	n = min(n, maxLen)
	return int64(hl) + int64(n), true
}

// takeControl consumes a complete, well-formed masked ping or pong frame at
// the head of the buffer (only at a frame boundary) and returns its opcode
// and unmasked payload; ok is false when the head is anything else, which
// is left to gorilla.
func (c *frameConn) takeControl() (op byte, payload []byte, ok bool) {
	if c.buf == nil || c.left != 0 || c.nhdr != 0 {
		return 0, nil, false
	}
	b := (*c.buf)[c.r:c.w]
	if len(b) < 6 {
		return 0, nil, false
	}
	op = b[0] & 0x0f
	n := int(b[1] & 0x7f)
	if b[0]&0xf0 != 0x80 || (op != 0x9 && op != 0xa) || b[1]&0x80 == 0 || n > 125 || len(b) < 6+n {
		return 0, nil, false
	}
	key := b[2:6]
	payload = make([]byte, n)
	for i := range payload {
		payload[i] = b[6+i] ^ key[i&3]
	}
	c.r += 6 + n
	c.release()
	return op, payload, true
}

// hijacker hands gorilla a frameConn instead of the raw connection.
type hijacker struct {
	http.ResponseWriter
	fc *frameConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.fc = newFrameConn(c)
	return h.fc, brw, nil
}
