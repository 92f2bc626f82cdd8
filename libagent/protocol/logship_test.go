package protocol

import (
	"errors"
	"testing"
)

// TestLogShipRoundTrip: the log.v1 payloads travel in Extra and come back
// as they were sent; a missing or malformed payload is ErrMalformed.
func TestLogShipRoundTrip(t *testing.T) {
	in := &LogBatch{Project: "web", Seq: 7, Created: 1, Lines: 2, Bytes: 3,
		Sources: []LogSource{{ID: "a", Name: "/x", First: 0, End: 9}}, Data: []byte{0x28, 0xb5, 0, 0xff}}
	m := &Msg{Type: TypeLogBatch, TID: "lb-1"}
	if err := m.SetExtra(KeyLogBatch, in); err != nil {
		t.Fatal(err)
	}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var out LogBatch
	if err := d.GetExtra(KeyLogBatch, &out); err != nil {
		t.Fatal(err)
	}
	if d.TID != "lb-1" || out.Seq != 7 || string(out.Data) != string(in.Data) || out.Sources[0] != in.Sources[0] {
		t.Fatalf("got %+v", out)
	}
	var a LogAck
	if err := d.GetExtra(KeyLogAck, &a); !errors.Is(err, ErrMalformed) {
		t.Fatalf("missing key: %v", err)
	}
	bad, err := Decode([]byte(`{"type":152,"log_ack":{"seq":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.GetExtra(KeyLogAck, &a); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed payload: %v", err)
	}
}
