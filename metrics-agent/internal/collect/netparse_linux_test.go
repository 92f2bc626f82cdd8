package collect

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentfleet/libagent/protocol"
)

// TestConnListManySockets lists tables whose texts span several blocks
// (connTextChunk) and checks every connection against a list built from
// the same numbers independently.
func TestConnListManySockets(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "net")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 4000
	var tcp, unixT strings.Builder
	var want []protocol.HMConnection
	owner := map[uint64]sockOwner{}
	tcp.WriteString(tcpHeader)
	for i := range n {
		port := 10000 + i
		ino := 0
		state, status := 6, "TIME_WAIT"
		if i%10 == 0 {
			ino, state, status = 5000+i, 1, "ESTABLISHED"
			owner[uint64(ino)] = sockOwner{pid: int32(100 + i), fd: uint32(3 + i%7)}
		}
		fmt.Fprintf(&tcp, "%4d: 0A000001:%04X 0A0000%02X:0050 %02X 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000%20s\n", i, port, i%256, state, ino, "")
		h := protocol.HMConnection{Type: "tcp4", Local: fmt.Sprintf("1.0.0.10:%d", port), Remote: fmt.Sprintf("%d.0.0.10:80", i%256), Status: status}
		if o, ok := owner[uint64(ino)]; ok {
			h.Pid, h.FD = o.pid, o.fd
		}
		want = append(want, h)
	}
	unixT.WriteString("Num       RefCount Protocol Flags    Type St Inode Path\n")
	for i := range n {
		path := ""
		if i%3 != 0 {
			path = fmt.Sprintf("/run/app/%d sock", i)
		}
		fmt.Fprintf(&unixT, "0000000000000000: 00000002 00000000 00000000 0001 03 %d %s\n", 90000+i, path)
		want = append(want, protocol.HMConnection{Type: "unix", Local: path, Status: "ESTABLISHED"})
	}
	for name, content := range map[string]string{"tcp": tcp.String(), "unix": unixT.String(),
		"udp": "   sl  local_address rem_address   st\n   0: 0100007F:0035 00000000:0000 07 0:0 0:0 0 0 0 1 1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if tcp.Len() < 3*connTextChunk {
		t.Fatalf("tables of %d bytes do not span several text blocks", tcp.Len())
	}
	c := New(Options{Roots: Roots{Proc: root}})

	var w warns
	got := c.connList(&snapshot{owner: owner}, kindTCP4|kindTCP6|kindUnix, &w)
	if len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("connection %d of %d/%d: got %+v, want %+v", i, len(got), len(want), got[i], want[i])
			}
		}
		t.Fatalf("%d connections, want %d", len(got), len(want))
	}

	// Only the wanted kinds are read; nothing at all lists as nil.
	w = nil
	got = c.connList(&snapshot{}, kindUDP4, &w)
	if len(got) != 1 || got[0] != (protocol.HMConnection{Type: "udp4", Local: "127.0.0.1:53"}) || len(w) != 0 {
		t.Errorf("udp4: %+v, warnings %v", got, w)
	}
	if got = c.connList(&snapshot{}, 0, &w); got != nil {
		t.Errorf("no kinds: %+v", got)
	}
}

// TestConnListBadTable checks that a bad line costs the rest of its table
// only: what came before it is listed, with a warning naming the line.
func TestConnListBadTable(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	tcp := tcpHeader + "   0: 0100007F:0CEA 00000000:0000 0A 0:0 0:0 0 0 0 1 1\n   1: 0100007F:0CEA 00000000:0000 ZZ 0:0 0:0 0 0 0 2 1\n"
	if err := os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(tcp), 0o644); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Roots: Roots{Proc: root}})
	var w warns
	got := c.connList(&snapshot{}, kindAll, &w)
	want := []protocol.HMConnection{{Type: "tcp4", Local: "127.0.0.1:3306", Status: "LISTEN"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	var texts []string
	for _, x := range w {
		texts = append(texts, strings.ReplaceAll(x.Error(), root, "<root>"))
	}
	wantW := []string{
		`conns.tcp: net line 3: state "ZZ": syntax error`,
		"conns.udp: open <root>/net/udp: no such file or directory",
		"conns.unix: open <root>/net/unix: no such file or directory",
	}
	if !slices.Equal(texts, wantW) {
		t.Errorf("warnings %q, want %q", texts, wantW)
	}
}
