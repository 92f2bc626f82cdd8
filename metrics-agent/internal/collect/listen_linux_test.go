package collect

import (
	"encoding/binary"
	"testing"
)

// diagMsg builds one netlink message carrying an inet_diag_msg.
func diagMsg(typ uint16, port uint16, inode uint32) []byte {
	b := make([]byte, nlmsgHdrLen+inetDiagMsgLen)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.BigEndian.PutUint16(b[nlmsgHdrLen+inetDiagSport:], port)
	binary.NativeEndian.PutUint32(b[nlmsgHdrLen+inetDiagInode:], inode)
	return b
}

func doneMsg() []byte {
	b := make([]byte, nlmsgHdrLen+4)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], 3) // NLMSG_DONE
	return b
}

func TestParseDiag(t *testing.T) {
	m := map[uint64]uint32{}
	batch := append(diagMsg(20, 22, 101), diagMsg(20, 3306, 102)...)
	if done, err := parseDiag(batch, m); done || err != nil {
		t.Fatalf("done %v, err %v", done, err)
	}
	if done, err := parseDiag(doneMsg(), m); !done || err != nil {
		t.Fatalf("done %v, err %v", done, err)
	}
	if len(m) != 2 || m[101] != 22 || m[102] != 3306 {
		t.Errorf("listeners = %v", m)
	}
	bad := diagMsg(20, 1, 1)
	binary.NativeEndian.PutUint32(bad[0:], 9999)
	_, err := parseDiag(bad, m)
	checkErr(t, err, "sock_diag: message length 9999 of 88: syntax error")
	errMsg := diagMsg(2, 0, 0)
	if _, err := parseDiag(errMsg, m); err == nil || err.Error() != "sock_diag: kernel error: invalid argument" {
		t.Errorf("error message: %v", err)
	}
}

func FuzzParseDiag(f *testing.F) {
	f.Add(append(diagMsg(20, 22, 101), doneMsg()...))
	f.Add(diagMsg(2, 0, 0))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseDiag(b, map[uint64]uint32{})
	})
}
