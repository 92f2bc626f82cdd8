package batch

import (
	"bytes"
	"errors"
	"testing"
)

func sample() *Batch {
	recs := []Record{
		{Source: 0, Offset: 0, Time: 1, Stream: StreamFile, Data: []byte("hello")},
		{Source: 1, Offset: 42, Time: -5, Stream: StreamStderr, Flags: FlagTruncated, Data: []byte("\xff\xfe\x00 not utf-8")},
		{Source: 0, Offset: 6, Time: 2, Data: nil},
	}
	var block []byte
	for i := range recs {
		block = AppendRecord(block, &recs[i])
	}
	return &Batch{Project: "p", Seq: 9, Created: 123, Lines: 3, Bytes: 24,
		Sources: []Source{{ID: "a", Name: "/var/log/a.log", First: 0, End: 7}, {ID: "b", Name: "web-1", First: 42, End: 60}},
		Data:    Compress(nil, block)}
}

func TestRoundTrip(t *testing.T) {
	b := sample()
	enc, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Batch
	if err := got.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	if got.Seq != 9 || got.Project != "p" || len(got.Sources) != 2 || got.Sources[1] != b.Sources[1] {
		t.Fatalf("%+v", got)
	}
	recs, err := got.Records(0)
	if err != nil || len(recs) != 3 || !bytes.Equal(recs[1].Data, []byte("\xff\xfe\x00 not utf-8")) || recs[1].Time != -5 ||
		recs[1].Flags != FlagTruncated || recs[1].Source != 1 {
		t.Fatalf("%+v %v", recs, err)
	}
}

func TestCorrupt(t *testing.T) {
	enc, _ := sample().MarshalBinary()
	for name, mut := range map[string]func([]byte) []byte{
		"empty":    func(b []byte) []byte { return nil },
		"magic":    func(b []byte) []byte { b[0] = 'X'; return b },
		"checksum": func(b []byte) []byte { b[len(b)/2] ^= 1; return b },
		"short":    func(b []byte) []byte { return b[:len(b)-5] },
	} {
		var b Batch
		if err := b.UnmarshalBinary(mut(bytes.Clone(enc))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, block := range map[string][]byte{
		"source index": {5, 0, 0, 0, 0, 0},
		"length":       {0, 0, 0, 0, 0, 100, 'x'},
		"short":        {0, 0, 0},
	} {
		if _, err := DecodeRecords(block, 2); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	b := sample()
	b.Data = []byte("not zstd")
	if _, err := b.Records(0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad zstd: %v", err)
	}
	big := &Batch{Sources: []Source{{ID: "a"}}, Data: Compress(nil, make([]byte, 1<<20))}
	if _, err := big.Records(1024); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bound not enforced: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	enc, _ := sample().MarshalBinary()
	f.Add(enc)
	f.Add([]byte("LAB1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		if err := b.UnmarshalBinary(data); err != nil {
			return
		}
		recs, err := b.Records(1 << 20)
		if err != nil {
			return
		}
		for _, r := range recs {
			if r.Source >= len(b.Sources) {
				t.Fatal("source index out of range")
			}
		}
		if _, err := b.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeRecords(f *testing.F) {
	var block []byte
	block = AppendRecord(block, &Record{Source: 1, Offset: 5, Data: []byte("x")})
	f.Add(block, uint8(2))
	f.Fuzz(func(t *testing.T, block []byte, n uint8) {
		recs, err := DecodeRecords(block, int(n))
		if err != nil {
			return
		}
		var again []byte
		for i := range recs {
			again = AppendRecord(again, &recs[i])
		}
		if _, err := DecodeRecords(again, int(n)); err != nil {
			t.Fatalf("re-encoded block fails: %v", err)
		}
	})
}
