package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestPtyDataBytes(t *testing.T) {
	big := bytes.Repeat([]byte{0xff}, PtyMaxData)
	tests := []struct {
		name string
		data string
		want []byte
		err  string
	}{
		{"empty", "", []byte{}, ""},
		{"ctrl-c", "Aw==", []byte{3}, ""},
		{"utf-8 split", NewPtyData([]byte("h\xc3")).Data, []byte("h\xc3"), ""},
		{"largest", NewPtyData(big).Data, big, ""},
		{"one byte too many", NewPtyData(append(big, 1)).Data, nil, "pty data: 32769 bytes, at most 32768"},
		{"four bytes too many", NewPtyData(append(big, 1, 2, 3, 4)).Data, nil, "pty data: 43696 base64 characters, at most 43692 (32768 bytes)"},
		{"not base64", "a!==", nil, "pty data: illegal base64 data at input byte 1"},
		{"url alphabet", "-_8=", nil, "pty data: illegal base64 data at input byte 0"},
		{"missing padding", "AAA", nil, "pty data: illegal base64 data at input byte 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&PtyData{Data: tt.data}).Bytes()
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Bytes() error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("Bytes() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestPtyWindow(t *testing.T) {
	for _, tt := range []struct {
		in   uint32
		want int
	}{{0, PtyDefaultWindow}, {1, 1}, {16, 16}, {64, 64}, {65, PtyMaxWindow}, {1 << 31, PtyMaxWindow}} {
		if got := PtyWindow(tt.in); got != tt.want {
			t.Errorf("PtyWindow(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestCheckSize(t *testing.T) {
	for _, tt := range []struct {
		cols, rows uint16
		ok         bool
	}{{80, 24, true}, {1, 1, true}, {4096, 4096, true}, {0, 24, false}, {80, 0, false}, {4097, 24, false}, {80, 65535, false}} {
		err := CheckSize(tt.cols, tt.rows)
		if (err == nil) != tt.ok {
			t.Errorf("CheckSize(%d, %d) = %v", tt.cols, tt.rows, err)
		}
		if err != nil && !strings.Contains(err.Error(), "columns and rows must be 1…4096") {
			t.Errorf("CheckSize(%d, %d) error %q", tt.cols, tt.rows, err)
		}
	}
}

// Sizes and credits that do not fit their wire types are malformed, not
// wrapped around.
func TestPtyDecodeBad(t *testing.T) {
	for _, in := range []string{
		`{"type":104,"tid":"p","pty_open":{"cols":70000,"rows":24}}`,
		`{"type":108,"tid":"p","pty_resize":{"cols":-1,"rows":24}}`,
		`{"type":109,"tid":"p","pty_ack":{"n":-3}}`,
		`{"type":109,"tid":"p","pty_ack":{"n":4294967296}}`,
		`{"type":106,"tid":"p","pty_data":{"data":5}}`,
	} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%s) = %v, want ErrMalformed", in, err)
		}
	}
	for _, in := range []string{
		`{"type":106,"tid":"p","pty_resize":{"cols":1,"rows":1}}`,
		`{"type":107,"tid":"p"}`,
		`{"type":111,"tid":"p","pty_data":{"data":""}}`,
	} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrPayload) {
			t.Errorf("Decode(%s) = %v, want ErrPayload", in, err)
		}
	}
}

// FuzzPtyData: Bytes never panics, never returns more than PtyMaxData
// bytes, and what it returns survives an encode/decode round trip.
func FuzzPtyData(f *testing.F) {
	for _, s := range []string{"", "Aw==", "aGk=", "a!==", "AAA", strings.Repeat("A", maxPtyEncoded), strings.Repeat("A", maxPtyEncoded+4)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := (&PtyData{Data: s}).Bytes()
		if err != nil {
			return
		}
		if len(b) > PtyMaxData {
			t.Fatalf("decoded %d bytes, limit %d", len(b), PtyMaxData)
		}
		again, err := NewPtyData(b).Bytes()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%q: round trip of %q gave %q, %v", s, b, again, err)
		}
	})
}
