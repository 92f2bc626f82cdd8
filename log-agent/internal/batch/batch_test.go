package batch

import (
	"bytes"
	"errors"
	"testing"

	"github.com/agentfleet/libagent/logship"
)

func sample() *Batch {
	recs := []logship.Record{
		{Source: 0, Offset: 0, Time: 1, Stream: logship.StreamFile, Data: []byte("hello")},
		{Source: 1, Offset: 42, Time: -5, Stream: logship.StreamStderr, Flags: logship.FlagTruncated, Data: []byte("\xff\xfe\x00 not utf-8")},
		{Source: 0, Offset: 6, Time: 2, Data: nil},
	}
	var block []byte
	for i := range recs {
		block = logship.AppendRecord(block, &recs[i])
	}
	return &Batch{Project: "p", Seq: 9, Created: 123, Lines: 3, Bytes: 24,
		Sources: []Source{{ID: "a", Name: "/var/log/a.log", First: 0, End: 7}, {ID: "b", Name: "web-1", First: 42, End: 60}},
		Data:    logship.Compress(nil, block)}
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
		recs[1].Flags != logship.FlagTruncated || recs[1].Source != 1 {
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
	// The record codec's own cases are in libagent/logship; here, that
	// Records reports them as this package's ErrCorrupt too.
	bad := sample()
	bad.Data = logship.Compress(nil, []byte{5, 0, 0, 0, 0, 0})
	if _, err := bad.Records(0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad source index: %v", err)
	}
	b := sample()
	b.Data = []byte("not zstd")
	if _, err := b.Records(0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad zstd: %v", err)
	}
	big := &Batch{Sources: []Source{{ID: "a"}}, Data: logship.Compress(nil, make([]byte, 1<<20))}
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
