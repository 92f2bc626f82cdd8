package collect

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// listeners maps the inodes of listening TCP sockets to their ports. On the
// running host (default Proc root) it asks the kernel through sock_diag
// netlink for listening sockets only, which costs the same whether the host
// has ten connections or a hundred thousand; elsewhere, or when netlink is
// refused, it reads the tcp and tcp6 tables under the Proc root.
func (c *Collector) listeners(w *warns) map[uint64]uint32 {
	if c.roots.Proc == DefaultRoots().Proc {
		if m, err := netlinkListeners(); err == nil {
			return m
		}
	}
	m := make(map[uint64]uint32)
	for i, name := range inetFiles[:2] {
		b, err := os.ReadFile(c.proc("net", name))
		if err != nil {
			if i == 0 {
				w.add("process.listen", err)
			}
			continue
		}
		list, err := parseNetIP(b)
		if err != nil {
			w.add("process.listen", err)
		}
		for _, e := range list {
			if e.State == tcpListen && e.Inode != 0 {
				m[e.Inode] = uint32(e.Local.Port())
			}
		}
	}
	return m
}

// Sizes of struct nlmsghdr, inet_diag_req_v2 and inet_diag_msg
// (linux/inet_diag.h).
const (
	nlmsgHdrLen     = 16
	inetDiagReqLen  = 56
	inetDiagMsgLen  = 72
	inetDiagInode   = 68 // offset of idiag_inode in inet_diag_msg
	inetDiagSport   = 4  // offset of id.idiag_sport (big endian)
	tcpListenStateN = 10 // TCP_LISTEN
)

func netlinkListeners() (map[uint64]uint32, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	m := make(map[uint64]uint32)
	buf := make([]byte, 32<<10)
	for seq, family := range []byte{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, nlmsgHdrLen+inetDiagReqLen)
		binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
		binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
		binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
		binary.NativeEndian.PutUint32(req[8:], uint32(seq+1))
		req[nlmsgHdrLen] = family
		req[nlmsgHdrLen+1] = unix.IPPROTO_TCP
		binary.NativeEndian.PutUint32(req[nlmsgHdrLen+4:], 1<<tcpListenStateN)
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, fmt.Errorf("sock_diag request: %w", err)
		}
		if err := readDiag(fd, buf, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// readDiag reads one dump's answers into m.
func readDiag(fd int, buf []byte, m map[uint64]uint32) error {
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("sock_diag read: %w", err)
		}
		done, err := parseDiag(buf[:n], m)
		if done || err != nil {
			return err
		}
	}
}

// parseDiag adds the sockets of one netlink read (a batch of inet_diag_msg)
// to m; done tells that the dump is complete.
func parseDiag(b []byte, m map[uint64]uint32) (done bool, err error) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		if l < nlmsgHdrLen || l > len(b) {
			return true, fmt.Errorf("sock_diag: message length %d of %d: %w", l, len(b), errSyntax)
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			return true, fmt.Errorf("sock_diag: kernel error: %w", unix.EINVAL)
		}
		if d := b[nlmsgHdrLen:l]; len(d) >= inetDiagMsgLen {
			port := binary.BigEndian.Uint16(d[inetDiagSport:])
			m[uint64(binary.NativeEndian.Uint32(d[inetDiagInode:]))] = uint32(port)
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return false, nil
}
