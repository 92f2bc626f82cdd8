package protocol

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/agentfleet/jkframe/compress"
)

// TestFixtureBlobs checks that the blob fields of the fixtures are what the
// doc says: $N$ blobs for files and log chunks, plain base64 for exec output.
func TestFixtureBlobs(t *testing.T) {
	tests := []struct {
		fixture string
		field   func(*Msg) string
		want    []byte
	}{
		{"upload", func(m *Msg) string { return m.Upload().Data }, []byte("hello\n")},
		{"download_data", func(m *Msg) string { return m.DownloadData().Data }, []byte{0, 1, 2}},
		{"log_download_data", func(m *Msg) string { return m.LogDData().Data }, []byte("exec-agent.log contents\n")},
	}
	for _, tt := range tests {
		m := decodeFixture(t, tt.fixture)
		got, err := compress.Decode(tt.field(m), 1<<20)
		if err != nil {
			t.Errorf("%s: %v", tt.fixture, err)
			continue
		}
		if !bytes.Equal(got, tt.want) {
			t.Errorf("%s: data %q, want %q", tt.fixture, got, tt.want)
		}
	}
	m := decodeFixture(t, "exec_data")
	out, err := base64.StdEncoding.DecodeString(m.ExecData().Data)
	if err != nil || string(out) != "hello wide world\n" {
		t.Errorf("exec_data: %q, %v", out, err)
	}
}

func decodeFixture(t testing.TB, name string) *Msg {
	t.Helper()
	for _, s := range samples {
		if s.name == name {
			b, err := Encode(s.msg)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no sample %q", name)
	return nil
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"exec_data", "hm_dynamic_rep", "come_ext"} {
		enc, err := Encode(decodeFixture(b, name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{"exec_data", "hm_dynamic_rep", "come_ext"} {
		m := decodeFixture(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
