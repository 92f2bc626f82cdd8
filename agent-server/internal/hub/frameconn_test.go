package hub

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// chunkConn returns data in chunks of the given sizes (cycled).
type chunkConn struct {
	net.Conn
	data   []byte
	chunks []byte
	i      int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.chunks) > 0 {
		n = int(c.chunks[c.i%len(c.chunks)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// frame builds a masked client frame with an n-byte payload.
func frame(op byte, n int) []byte {
	b := []byte{0x80 | op}
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, 0, 0)
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b = append(b, 1, 2, 3, 4)
	return append(b, bytes.Repeat([]byte{'x'}, n)...)
}

// checkFrames feeds frames through a frameConn in chunks and checks that
// no Read crosses a frame boundary and that the bytes come out intact.
func checkFrames(t *testing.T, sizes []int, chunks []byte) {
	var all []byte
	var ends []int
	for i, n := range sizes {
		op := byte(0x1)
		if i%3 == 2 && n <= 125 {
			op = 0x9
		}
		all = append(all, frame(op, n)...)
		ends = append(ends, len(all))
	}
	fc := newFrameConn(&chunkConn{data: all, chunks: chunks})
	var got []byte
	p := make([]byte, 300)
	for {
		k, err := fc.Read(p)
		for _, e := range ends {
			if len(got) < e && len(got)+k > e {
				t.Fatalf("read [%d,%d) crosses frame end %d", len(got), len(got)+k, e)
			}
		}
		got = append(got, p[:k]...)
		if err != nil {
			break
		}
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("got %d bytes, want %d", len(got), len(all))
	}
	if !fc.idle() {
		t.Fatal("buffer not released at EOF")
	}
}

func TestFrameConnBoundaries(t *testing.T) {
	tests := []struct {
		sizes  []int
		chunks []byte
	}{
		{[]int{0, 5, 125, 126, 300, 70000}, nil},
		{[]int{10, 0, 3}, []byte{0}},
		{[]int{200, 1, 65535, 4}, []byte{7, 13, 255}},
		{[]int{125, 125, 125}, []byte{131}},
	}
	for _, tt := range tests {
		checkFrames(t, tt.sizes, tt.chunks)
	}
}

func TestFrameConnTakeControl(t *testing.T) {
	data := append(frame(0x9, 3), frame(0xa, 0)...)
	data = append(data, frame(0x1, 2)...)
	fc := newFrameConn(&chunkConn{data: data, chunks: []byte{255}})
	fc.fill()
	op, payload, ok := fc.takeControl()
	if !ok || op != 0x9 || !bytes.Equal(payload, []byte{'x' ^ 1, 'x' ^ 2, 'x' ^ 3}) {
		t.Fatalf("ping: %v %q %v", op, payload, ok)
	}
	if op, _, ok := fc.takeControl(); !ok || op != 0xa {
		t.Fatalf("pong: %v %v", op, ok)
	}
	if _, _, ok := fc.takeControl(); ok {
		t.Fatal("text frame taken as control")
	}
	if fc.idle() {
		t.Fatal("text frame lost")
	}
}

func FuzzFrameConn(f *testing.F) {
	f.Add([]byte{0, 5, 125, 126}, []byte{})
	f.Add([]byte{10, 0, 3}, []byte{0})
	f.Add([]byte{200, 1, 4}, []byte{7, 13, 255})
	f.Fuzz(func(t *testing.T, sizes []byte, chunks []byte) {
		if len(sizes) > 64 {
			return
		}
		ns := make([]int, len(sizes))
		for i, s := range sizes {
			ns[i] = int(s) * int(s) // up to 65025: all three length forms
		}
		checkFrames(t, ns, chunks)
	})
}
