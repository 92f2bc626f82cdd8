package logship

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func sample() []Record {
	return []Record{
		{Source: 0, Offset: 0, Time: 1, Stream: StreamFile, Data: []byte("hello")},
		{Source: 1, Offset: 42, Time: -5, Stream: StreamStderr, Flags: FlagTruncated, Data: []byte("\xff\xfe\x00 not utf-8")},
		{Source: 0, Offset: 6, Time: 1_700_000_000_123_456_789, Stream: StreamStdout, Flags: FlagPartial | FlagMultiline, Data: nil},
		{Source: 1, Offset: 1 << 40, Time: 0, Data: bytes.Repeat([]byte("x"), 300)},
	}
}

// TestGolden pins the wire bytes of a record block: log-agents and servers
// of different versions must read each other's blocks.
func TestGolden(t *testing.T) {
	var block []byte
	recs := sample()
	for i := range recs {
		block = AppendRecord(block, &recs[i])
	}
	path := filepath.Join("testdata", "records.golden")
	got := hex.EncodeToString(block) + "\n"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("record block bytes changed (go test -update if on purpose, and never for a released format):\ngot  %s\nwant %s", got, want)
	}
	raw, _ := hex.DecodeString(strings.TrimSpace(string(want)))
	dec, err := DecodeRecords(raw, 2)
	if err != nil || len(dec) != len(recs) {
		t.Fatalf("golden block: %d records, %v", len(dec), err)
	}
	for i := range recs {
		a, b := recs[i], dec[i]
		if a.Source != b.Source || a.Offset != b.Offset || a.Time != b.Time || a.Stream != b.Stream || a.Flags != b.Flags || !bytes.Equal(a.Data, b.Data) {
			t.Errorf("record %d: %+v, want %+v", i, b, a)
		}
	}
}

func TestDecodeRecordsBad(t *testing.T) {
	for _, c := range []struct {
		name    string
		block   []byte
		sources int
		msg     string
	}{
		{"index past sources", []byte{5, 0, 0, 0, 0, 0}, 2, "record 0: source index"},
		{"no sources", []byte{0, 0, 0, 0, 0, 0}, 0, "record 0: source index"},
		{"offset cut", []byte{0}, 1, "record 0: offset"},
		{"offset too large", append([]byte{0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), 1, "record 0: offset"},
		{"time cut", []byte{0, 1}, 1, "record 0: time"},
		{"stream and flags cut", []byte{0, 1, 2}, 1, "record 0: short"},
		{"length past the end", []byte{0, 1, 2, 0, 0, 9, 'a'}, 1, "record 0: length"},
		{"length over the bound", append([]byte{0, 1, 2, 0, 0}, 0x81, 0x80, 0x80, 0x20), 1, "record 0: length"},
		{"second record bad", []byte{0, 1, 2, 0, 0, 1, 'a', 3}, 1, "record 1: source index"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeRecords(c.block, c.sources)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want ErrCorrupt naming %q", err, c.msg)
			}
		})
	}
	if recs, err := DecodeRecords(nil, 0); err != nil || len(recs) != 0 {
		t.Fatalf("empty block: %v %v", recs, err)
	}
}

func TestCompress(t *testing.T) {
	var block []byte
	recs := sample()
	for i := range recs {
		block = AppendRecord(block, &recs[i])
	}
	z := Compress([]byte("prefix"), block)
	if !bytes.HasPrefix(z, []byte("prefix")) {
		t.Fatal("Compress does not append")
	}
	got, err := Decompress(z[len("prefix"):], 1<<20)
	if err != nil || !bytes.Equal(got, block) {
		t.Fatalf("round trip: %v", err)
	}
	for _, c := range []struct {
		name  string
		data  []byte
		limit int
		msg   string
	}{
		{"not zstd", []byte("not zstd at all"), 1 << 20, "corrupt"},
		{"over the bound", Compress(nil, make([]byte, 1<<20)), 1024, "at most 1024"},
		{"cut", z[len("prefix") : len(z)-3], 1 << 20, "corrupt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Decompress(c.data, c.limit); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want ErrCorrupt naming %q", err, c.msg)
			}
		})
	}
	if _, err := Decompress(z, 0); err == nil {
		t.Fatal("bound 0 accepted")
	}
}

func FuzzDecodeRecords(f *testing.F) {
	var block []byte
	recs := sample()
	for i := range recs {
		block = AppendRecord(block, &recs[i])
	}
	f.Add(block, uint8(2))
	f.Add([]byte{0, 1, 2, 0, 0, 9, 'a'}, uint8(1))
	f.Add([]byte{5, 0, 0, 0, 0, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, block []byte, n uint8) {
		recs, err := DecodeRecords(block, int(n))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		var again []byte
		for i := range recs {
			if recs[i].Source >= int(n) {
				t.Fatalf("source %d of %d", recs[i].Source, n)
			}
			again = AppendRecord(again, &recs[i])
		}
		recs2, err := DecodeRecords(again, int(n))
		if err != nil || len(recs2) != len(recs) {
			t.Fatalf("re-encoded block: %d records of %d, %v", len(recs2), len(recs), err)
		}
	})
}

func FuzzDecompress(f *testing.F) {
	f.Add(Compress(nil, []byte("hello hello hello")))
	f.Add([]byte("not zstd"))
	f.Fuzz(func(t *testing.T, data []byte) {
		block, err := Decompress(data, 1<<16)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if len(block) > 1<<16 {
			t.Fatalf("%d bytes past the bound", len(block))
		}
	})
}
