package collect

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Connection-list benchmarks with many sockets. The figures go to
// e2e/README.md (Collectors table).

// BenchmarkConnectionsTable measures a connection list on a fixture /proc
// holding 20,000 TIME_WAIT sockets (the host state that made the conns job
// expensive), 1,000 established ones, 200 IPv6 ones and 2,000 unix sockets,
// and no processes: the table reading alone, independent of the host.
func BenchmarkConnectionsTable(b *testing.B) {
	root := b.TempDir()
	writeNetTables(b, filepath.Join(root, "net"), 20000, 1000, 200, 2000)
	c := New(Options{Roots: Roots{Proc: root, Sys: root, Etc: root, Dev: root}, ShareWindow: -1})
	ctx := context.Background()
	n := 0
	for b.Loop() {
		cs, _ := c.Connections(ctx, nil)
		n = len(cs)
	}
	if n != 20000+1000+200+2000 {
		b.Fatalf("%d connections listed", n)
	}
	b.ReportMetric(float64(n), "sockets")
}

// writeNetTables writes tcp, tcp6, udp and unix tables in the kernel's
// format (lines of /proc/net/tcp are padded to 150 bytes).
func writeNetTables(b *testing.B, dir string, timeWait, established, v6, unixN int) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-149s\n", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")
	sl := 0
	for i := range established {
		fmt.Fprintf(&sb, "%-149s\n", fmt.Sprintf("%4d: 0100007F:%04X 0100007F:0CEA 01 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0000000000000000 20 4 30 10 -1", sl, 40000+i, 100000+i))
		sl++
	}
	for i := range timeWait {
		fmt.Fprintf(&sb, "%-149s\n", fmt.Sprintf("%4d: 0100007F:%04X 0100007F:%04X 06 00000000:00000000 03:000006AE 00000000     0        0 0 3 0000000000000000", sl, 32768+i%28000, 3306+i/28000))
		sl++
	}
	writeBench(b, filepath.Join(dir, "tcp"), sb.String())

	sb.Reset()
	sb.WriteString("  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i := range v6 {
		fmt.Fprintf(&sb, "%4d: B80D0120000000000000000001000000:%04X B80D0120000000000000000002000000:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0000000000000000 20 4 30 10 -1\n", i, 50000+i, 200000+i)
	}
	writeBench(b, filepath.Join(dir, "tcp6"), sb.String())
	writeBench(b, filepath.Join(dir, "udp"), "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n")

	sb.Reset()
	sb.WriteString("Num       RefCount Protocol Flags    Type St Inode Path\n")
	for i := range unixN {
		if i%2 == 0 {
			fmt.Fprintf(&sb, "0000000000000000: 00000003 00000000 00000000 0001 03 %d\n", 300000+i)
		} else {
			fmt.Fprintf(&sb, "0000000000000000: 00000003 00000000 00000000 0001 03 %d /run/systemd/journal/stdout\n", 300000+i)
		}
	}
	writeBench(b, filepath.Join(dir, "unix"), sb.String())
}

func writeBench(b *testing.B, path, content string) {
	b.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConnectionsLive measures a connection-list request on the live
// host after the test process added sockets of its own: 20,000 in TIME_WAIT
// (no owner, no fd), or 9,000 established loopback connections (18,000 fds
// in this process: the fd limit here is 20,000). The host's own sockets come
// on top; the sockets metric says how many were listed.
func BenchmarkConnectionsLive(b *testing.B) {
	b.Run("time_wait=20000", func(b *testing.B) {
		timeWaitSockets(b, 20000)
		benchLive(b)
	})
	b.Run("established=9000", func(b *testing.B) {
		established(b, 9000)
		benchLive(b)
	})
}

func benchLive(b *testing.B) {
	c := New(Options{ShareWindow: -1})
	ctx := context.Background()
	kinds := []string{"tcp", "udp", "unix"}
	n := 0
	start := cpuTime(b)
	for b.Loop() {
		cs, _ := c.Connections(ctx, kinds)
		n = len(cs)
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(n), "sockets")
}

// timeWaitMade is when the benchmark's TIME_WAIT sockets were made: they
// outlive the benchmark function (the kernel keeps them 60 s), so -count N
// reuses them instead of piling up N sets.
var timeWaitMade struct {
	sync.Mutex
	at time.Time
	n  int
}

// timeWaitSockets makes n loopback connections and closes them client first:
// each leaves a TIME_WAIT entry in /proc/net/tcp, without fd or owner.
func timeWaitSockets(b *testing.B, n int) {
	b.Helper()
	timeWaitMade.Lock()
	defer timeWaitMade.Unlock()
	if timeWaitMade.n >= n && time.Since(timeWaitMade.at) < 40*time.Second {
		return
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	for i := range n {
		cl, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		sv, err := ln.Accept()
		if err != nil {
			cl.Close()
			b.Fatalf("accept %d: %v", i, err)
		}
		cl.Close() // the active closer keeps the TIME_WAIT
		sv.Close()
	}
	timeWaitMade.at, timeWaitMade.n = time.Now(), n
}

// established opens n loopback connections held until the benchmark ends;
// they are reset on close so that they leave no TIME_WAIT behind.
func established(b *testing.B, n int) {
	b.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	conns := make([]*net.TCPConn, 0, 2*n)
	b.Cleanup(func() {
		for _, c := range conns {
			c.SetLinger(0)
			c.Close()
		}
	})
	defer ln.Close()
	for i := range n {
		cl, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, cl.(*net.TCPConn))
		sv, err := ln.Accept()
		if err != nil {
			b.Fatalf("accept %d: %v", i, err)
		}
		conns = append(conns, sv.(*net.TCPConn))
	}
}
