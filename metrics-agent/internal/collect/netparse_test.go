package collect

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

var netTCPCases = []struct {
	name, in string
	want     []inetSocket
	err      string
}{
	{"v4 listen", tcpHeader + "   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 9001 1\n",
		[]inetSocket{{netip.MustParseAddrPort("127.0.0.1:3306"), netip.MustParseAddrPort("0.0.0.0:0"), 0x0A, 9001}}, ""},
	{"v6", "   0: 00000000000000000000000001000000:0016 B80D0120000000000000000001000000:01BB 01 0:0 0:0 0 0 0 77 1\n",
		[]inetSocket{{netip.MustParseAddrPort("[::1]:22"), netip.MustParseAddrPort("[2001:db8::1]:443"), 1, 77}}, ""},
	{"v4-mapped v6", "   1: 0000000000000000FFFF00000100007F:0CEA 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 5 1\n",
		[]inetSocket{{netip.MustParseAddrPort("127.0.0.1:3306"), netip.MustParseAddrPort("[::]:0"), 0x0A, 5}}, ""},
	{"kernel padding, tabs, CRLF, lower case, no final newline",
		"   0: 0100007F:0CEA 0100007F:A1B2 06 00000000:00000000 03:000006AE 00000000     0        0 0 3 0000000000000000          \n\n" +
			"\t1:\t0a00020f:01bb\t0b00020F:c350\t01 0:0 0:0 0 0 0 18446744073709551615 1\r\n" +
			"   2: 0100007F:0035 00000000:0000 0000007 0:0 0:0 0 0 0 42",
		[]inetSocket{
			{netip.MustParseAddrPort("127.0.0.1:3306"), netip.MustParseAddrPort("127.0.0.1:41394"), 6, 0},
			{netip.MustParseAddrPort("15.2.0.10:443"), netip.MustParseAddrPort("15.2.0.11:50000"), 1, 1<<64 - 1},
			{netip.MustParseAddrPort("127.0.0.1:53"), netip.MustParseAddrPort("0.0.0.0:0"), 7, 42},
		}, ""},
	{"lines before a bad one are kept", "   0: 0100007F:0CEA 00000000:0000 0A 0:0 0:0 0 0 0 1 1\n   1: 0100007F:0CEA 00000000:0000 0A 0:0\n",
		[]inetSocket{{netip.MustParseAddrPort("127.0.0.1:3306"), netip.MustParseAddrPort("0.0.0.0:0"), 0x0A, 1}},
		"net line 2: 5 fields: syntax error"},
	{"short", "   0: 0100007F:0CEA 00000000:0000 0A\n", nil, "net line 1: 4 fields: syntax error"},
	{"bad address", "   0: 0100007:0CEA 00000000:0000 0A 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: local address "0100007:0CEA": syntax error`},
	{"bad port", "   0: 0100007F:CEA 00000000:0000 0A 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: local address "0100007F:CEA": syntax error`},
	{"no port", "   0: 0100007F 00000000:0000 0A 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: local address "0100007F": syntax error`},
	{"two colons", "   0: 0100007F:0CEA:0000 00000000:0000 0A 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: local address "0100007F:0CEA:0000": syntax error`},
	{"bad hex digit", "   0: 0100007F:0CEA 0000G000:0000 0A 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: remote address "0000G000:0000": syntax error`},
	{"bad port digit", "   0: 0100007F:0CEA 00000000:00x0 0A 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: remote address "00000000:00x0": syntax error`},
	{"16-digit address", "   0: 000000000100007F:0CEA 00000000:0000 0A 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: local address "000000000100007F:0CEA": syntax error`},
	{"bad state", "   0: 0100007F:0CEA 00000000:0000 XYZ 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: state "XYZ": syntax error`},
	{"state out of range", "   0: 0100007F:0CEA 00000000:0000 100 0:0 0:0 0 0 0 1 1\n", nil, `net line 1: state "100": syntax error`},
	{"bad inode", "   0: 0100007F:0CEA 00000000:0000 0A 0:0 0:0 0 0 0 -1 1\n", nil, `net line 1: inode "-1": syntax error`},
	{"inode out of range", "   0: 0100007F:0CEA 00000000:0000 0A 0:0 0:0 0 0 0 18446744073709551616 1\n", nil, `net line 1: inode "18446744073709551616": syntax error`},
}

func TestParseNetTCP(t *testing.T) {
	for _, tt := range netTCPCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNetIP([]byte(tt.in))
			checkErr(t, err, tt.err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// unixEntry is a unixSocket with its path kept.
type unixEntry struct {
	Flags uint32
	State uint8
	Inode uint64
	Path  string
}

func readNetUnix(data []byte) ([]unixEntry, error) {
	var out []unixEntry
	err := scanNetUnix(newNetReader(bytes.NewReader(data)), func(s *unixSocket) {
		out = append(out, unixEntry{s.Flags, s.State, s.Inode, string(s.Path)})
	})
	return out, err
}

var netUnixCases = []struct {
	name, in string
	want     []unixEntry
	err      string
}{
	{"listener, connected, path with blanks", "Num       RefCount Protocol Flags    Type St Inode Path\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01  9301 /run/mysqld/mysqld.sock\n" +
		"0000000000000000: 00000003 00000000 00000000 0001 03  9303\n" +
		"0000000000000000: 00000002 00000000 00000000 0002 01  9305 /tmp/my  socket\n",
		[]unixEntry{{0x10000, 1, 9301, "/run/mysqld/mysqld.sock"}, {0, 3, 9303, ""}, {0, 1, 9305, "/tmp/my  socket"}}, ""},
	{"abstract, trailing blanks, CRLF, no final newline",
		"0000000000000000: 00000002 00000000 00010000 0001 01 11 @/org/x\r\n" +
			"0000000000000000: 00000002 00000000 00000000 0001 01 12   \n" +
			"0000000000000000: 00000002 00000000 00000000 0001 01 13 /a b ",
		[]unixEntry{{0x10000, 1, 11, "@/org/x"}, {0, 1, 12, ""}, {0, 1, 13, "/a b "}}, ""},
	{"short", "0000000000000000: 00000002 00000000\n", nil, "net/unix line 1: 3 fields: syntax error"},
	{"bad flags", "0000000000000000: 00000002 00000000 zz 0001 01 1\n", nil, `net/unix line 1: strconv.ParseUint: parsing "zz": invalid syntax: syntax error`},
	{"bad state and inode", "0000000000000000: 00000002 00000000 0 0001 100 -1\n", nil,
		"net/unix line 1: strconv.ParseUint: parsing \"100\": value out of range\nstrconv.ParseUint: parsing \"-1\": invalid syntax: syntax error"},
	{"lines before a bad one are kept", "0000000000000000: 00000002 00000000 00000000 0001 01 7\n0000000000000000: 00000002 00000000 00000000 0001 01 x\n",
		[]unixEntry{{0, 1, 7, ""}}, `net/unix line 2: strconv.ParseUint: parsing "x": invalid syntax: syntax error`},
}

func TestParseNetUnix(t *testing.T) {
	for _, tt := range netUnixCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readNetUnix([]byte(tt.in))
			checkErr(t, err, tt.err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestNetLongLines checks lines longer than the reader's buffer: assembled
// up to maxNetLine, an error beyond.
func TestNetLongLines(t *testing.T) {
	path := "/" + strings.Repeat("p", 100<<10)
	in := "0000000000000000: 00000002 00000000 00000000 0001 01 5 " + path + "\n" +
		"0000000000000000: 00000002 00000000 00000000 0001 01 6 /short\n"
	got, err := readNetUnix([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := []unixEntry{{0, 1, 5, path}, {0, 1, 6, "/short"}}; !slices.Equal(got, want) {
		t.Errorf("got %d entries, first path %d bytes", len(got), len(got[0].Path))
	}

	in = tcpHeader + "   0: 0100007F:0CEA 00000000:0000 0A 0:0 0:0 0 0 0 1 1" + strings.Repeat(" ", maxNetLine) + "\n"
	list, err := parseNetIP([]byte(in))
	checkErr(t, err, "net line 2: line longer than 1048576 bytes: syntax error")
	if len(list) != 0 {
		t.Errorf("got %+v", list)
	}
}

func TestAppendAddr(t *testing.T) {
	for _, tt := range []struct {
		a      string
		remote bool
		want   string
	}{
		{"127.0.0.1:3306", false, "127.0.0.1:3306"},
		{"0.0.0.0:0", false, "0.0.0.0:0"},
		{"0.0.0.0:0", true, ""},
		{"[::]:0", true, ""},
		{"[::]:22", true, "[::]:22"},
		{"[2001:db8::1]:443", true, "[2001:db8::1]:443"},
	} {
		a := netip.MustParseAddrPort(tt.a)
		if got := string(appendAddr([]byte("x"), a, tt.remote)); got != "x"+tt.want || tt.want != formatAddr(a, tt.remote) {
			t.Errorf("appendAddr(%s, %v) = %q, formatAddr %q, want %q", tt.a, tt.remote, got, formatAddr(a, tt.remote), tt.want)
		}
	}
}

func FuzzParseNetTCP(f *testing.F) {
	for _, c := range netTCPCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		list, err := parseNetIP([]byte(in))
		wantSyntax(t, err)
		for _, s := range list {
			if !s.Local.IsValid() || !s.Remote.IsValid() || s.Local.Addr().Is4In6() || s.Remote.Addr().Is4In6() {
				t.Fatalf("address in %+v", s)
			}
			for _, a := range []netip.AddrPort{s.Local, s.Remote} {
				for _, remote := range []bool{false, true} {
					if got, want := string(appendAddr(nil, a, remote)), formatAddr(a, remote); got != want {
						t.Fatalf("appendAddr(%v) = %q, formatAddr %q", a, got, want)
					}
				}
			}
		}
	})
}

func FuzzParseNetUnix(f *testing.F) {
	for _, c := range netUnixCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		list, err := readNetUnix([]byte(in))
		wantSyntax(t, err)
		for _, s := range list {
			if p := s.Path; p != "" && (isBlank(p[0]) || strings.ContainsAny(p, "\n")) {
				t.Fatalf("path %q", p)
			}
		}
	})
}

// FuzzNetNumbers checks the allocation-free number parsers against strconv.
func FuzzNetNumbers(f *testing.F) {
	for _, s := range []string{"0", "0A", "ff", "FFFFFFFF", "100000000", "18446744073709551615", "18446744073709551616", "-1", "+1", "0x1", "1_0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, bits := range []uint{8, 16, 32, 64} {
			got, ok := parseHex([]byte(s), bits)
			want, err := strconv.ParseUint(s, 16, int(bits))
			if ok != (err == nil) || (ok && got != want) {
				t.Fatalf("parseHex(%q, %d) = %d, %v; strconv: %d, %v", s, bits, got, ok, want, err)
			}
		}
		got, ok := parseDec([]byte(s))
		want, err := strconv.ParseUint(s, 10, 64)
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("parseDec(%q) = %d, %v; strconv: %d, %v", s, got, ok, want, err)
		}
	})
}
