package collect

// Streaming parsers of the socket tables /proc/net/{tcp,tcp6,udp,udp6,unix}.
// A host may hold tens of thousands of sockets (TIME_WAIT ones mostly), and
// the conns job reads these tables every minute: they are read through one
// reused buffer, split into fields by hand and decoded into fixed-size values,
// so that reading a table allocates nothing per line. Like the parsers of
// parse.go they build on every OS and are fuzzed.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strconv"
)

// inetSocket is one line of /proc/net/{tcp,tcp6,udp,udp6}.
type inetSocket struct {
	Local, Remote netip.AddrPort
	State         uint8
	Inode         uint64
}

// TCP states as numbered in /proc/net/tcp.
const (
	tcpEstablished = 0x01
	tcpListen      = 0x0A
)

var tcpStates = [...]string{1: "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

// unixSocket is one line of /proc/net/unix. Path aliases the reader's
// buffer: it is valid until the callback that receives it returns.
type unixSocket struct {
	Flags uint32
	State uint8
	Inode uint64
	Path  []byte // "@name" for the abstract namespace, empty when unbound
}

const unixAcceptCon = 0x10000 // __SO_ACCEPTCON: a listening socket

// maxNetLine bounds a table line; the kernel writes ~150 bytes (a unix
// socket path at most 108).
const maxNetLine = 1 << 20

// netReader reads the lines of a socket table. One reader serves the tables
// of a connection list one after the other (reset), so that its buffers are
// allocated once.
type netReader struct {
	br   *bufio.Reader
	long []byte // a line longer than br's buffer, assembled
	n    int    // number of the line last returned, from 1
}

func newNetReader(r io.Reader) *netReader {
	return &netReader{br: bufio.NewReaderSize(r, 64<<10)}
}

func (l *netReader) reset(r io.Reader) {
	l.br.Reset(r)
	l.n = 0
}

// next returns the next line without its line end, valid until the next
// call; io.EOF after the last one.
func (l *netReader) next(file string) ([]byte, error) {
	line, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		l.long = append(l.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = l.br.ReadSlice('\n')
			if len(l.long)+len(line) > maxNetLine {
				return nil, syntaxErr(file, l.n+1, "line longer than %d bytes", maxNetLine)
			}
			l.long = append(l.long, line...)
		}
		line = l.long
	}
	if err == io.EOF && len(line) > 0 {
		err = nil // a last line without newline
	}
	if err != nil {
		return nil, err
	}
	l.n++
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// splitFields stores the first len(f) blank-separated fields of line in f
// and returns how many it stored and what follows them, leading blanks
// removed.
func splitFields(line []byte, f [][]byte) (int, []byte) {
	n, i := 0, 0
	for n < len(f) {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i == len(line) {
			break
		}
		start := i
		for i < len(line) && !isBlank(line[i]) {
			i++
		}
		f[n] = line[start:i]
		n++
	}
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	return n, line[i:]
}

// hexDigit returns the value of an ASCII hex digit, or 0xFF.
func hexDigit(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0xFF
}

// parseHex is strconv.ParseUint(string(b), 16, bits) without the string.
func parseHex(b []byte, bits uint) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	limit := uint64(1)<<bits - 1
	var v uint64
	for _, c := range b {
		d := hexDigit(c)
		if d == 0xFF || v > limit>>4 {
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, v <= limit
}

// parseDec is strconv.ParseUint(string(b), 10, 64) without the string.
func parseDec(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseHexAddrPort decodes an address of /proc/net/tcp: 8 or 32 hex digits,
// a colon, 4 hex digits of port. The kernel prints each 32-bit word of the
// address as an integer in the host's byte order.
func parseHexAddrPort(b []byte) (netip.AddrPort, bool) {
	i := bytes.IndexByte(b, ':')
	if i < 0 || len(b)-i-1 != 4 || (i != 8 && i != 32) {
		return netip.AddrPort{}, false
	}
	port, ok := parseHex(b[i+1:], 16)
	if !ok {
		return netip.AddrPort{}, false
	}
	var raw [16]byte
	for j := 0; j < i; j += 2 {
		hi, lo := hexDigit(b[j]), hexDigit(b[j+1])
		if hi == 0xFF || lo == 0xFF {
			return netip.AddrPort{}, false
		}
		raw[j/2] = hi<<4 | lo
	}
	// Get the memory order of each word back by re-encoding it in host order.
	for j := 0; j < i/2; j += 4 {
		binary.NativeEndian.PutUint32(raw[j:], binary.BigEndian.Uint32(raw[j:]))
	}
	var addr netip.Addr
	if i == 8 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16(raw).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// scanNetIP calls fn for each socket of a /proc/net/{tcp,tcp6,udp,udp6}
// table, in the table's order, and stops at the first bad line. The pointer
// is valid until fn returns.
func scanNetIP(l *netReader, fn func(*inetSocket)) error {
	var f [10][]byte
	var s inetSocket
	for {
		line, err := l.next("net")
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		n, _ := splitFields(line, f[:])
		if n == 0 || string(f[0]) == "sl" {
			continue
		}
		if n < len(f) {
			return syntaxErr("net", l.n, "%d fields", n)
		}
		var ok bool
		var v uint64
		if s.Local, ok = parseHexAddrPort(f[1]); !ok {
			return syntaxErr("net", l.n, "local address %q", f[1])
		}
		if s.Remote, ok = parseHexAddrPort(f[2]); !ok {
			return syntaxErr("net", l.n, "remote address %q", f[2])
		}
		if v, ok = parseHex(f[3], 8); !ok {
			return syntaxErr("net", l.n, "state %q", f[3])
		}
		s.State = uint8(v)
		if s.Inode, ok = parseDec(f[9]); !ok {
			return syntaxErr("net", l.n, "inode %q", f[9])
		}
		fn(&s)
	}
}

// parseNetIP returns the sockets of a whole /proc/net/{tcp,tcp6,udp,udp6}
// table; those before a bad line come with the error.
func parseNetIP(data []byte) ([]inetSocket, error) {
	var out []inetSocket
	err := scanNetIP(newNetReader(bytes.NewReader(data)), func(s *inetSocket) { out = append(out, *s) })
	return out, err
}

// scanNetUnix calls fn for each socket of /proc/net/unix, in the table's
// order, and stops at the first bad line. The pointer and the path it holds
// are valid until fn returns.
func scanNetUnix(l *netReader, fn func(*unixSocket)) error {
	var f [7][]byte
	var s unixSocket
	for {
		line, err := l.next("net/unix")
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		n, rest := splitFields(line, f[:])
		if n == 0 || string(f[0]) == "Num" {
			continue
		}
		if n < len(f) {
			return syntaxErr("net/unix", l.n, "%d fields", n)
		}
		flags, ok1 := parseHex(f[3], 32)
		st, ok2 := parseHex(f[5], 8)
		ino, ok3 := parseDec(f[6])
		if !ok1 || !ok2 || !ok3 {
			return unixFieldsErr(l.n, f)
		}
		s = unixSocket{Flags: uint32(flags), State: uint8(st), Inode: ino, Path: rest} // a path may hold blanks
		fn(&s)
	}
}

// unixFieldsErr names the bad numbers of a /proc/net/unix line as strconv
// does.
func unixFieldsErr(n int, f [7][]byte) error {
	_, err1 := strconv.ParseUint(string(f[3]), 16, 32)
	_, err2 := strconv.ParseUint(string(f[5]), 16, 8)
	_, err3 := strconv.ParseUint(string(f[6]), 10, 64)
	return syntaxErr("net/unix", n, "%v", errors.Join(err1, err2, err3))
}

// appendAddr appends what formatAddr returns.
func appendAddr(b []byte, a netip.AddrPort, remote bool) []byte {
	if remote && a.Port() == 0 && a.Addr().IsUnspecified() {
		return b
	}
	return a.AppendTo(b)
}
