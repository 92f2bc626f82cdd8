// Package compress implements the text encoding of binary blobs used on the
// agent wire protocol: a three-byte method prefix followed by standard base64.
//
//	$0$ + base64(raw)
//	$1$ + base64(gzip(raw))
//	$2$ + base64(zstd(raw))
//
// Decoders accept all three forms and always bound the decompressed size, so a
// small hostile message cannot expand into gigabytes. Encoders pick zstd only
// when it makes the payload smaller. zstd encoders and decoders are pooled and
// safe for concurrent use.
package compress

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Method names one of the encodings.
type Method byte

// The encodings, by their wire prefix digit.
const (
	Raw  Method = '0'
	Gzip Method = '1'
	Zstd Method = '2'
)

// Sentinel errors, for errors.Is.
var (
	// ErrFormat: the text is not $N$ followed by base64, or the compressed
	// stream inside it is corrupt.
	ErrFormat = errors.New("compress: bad encoding")
	// ErrTooLarge: the decoded bytes would exceed the caller's bound.
	ErrTooLarge = errors.New("compress: decoded data exceeds limit")
)

// minCompress is the size below which compression is never worth trying.
const minCompress = 64

var (
	encoders = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err) // only on invalid options, which are constant here
		}
		return e
	}}
	decoders = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			panic(err)
		}
		return d
	}}
)

// Encode returns data in the wire text form, zstd-compressed when that is
// smaller than the raw form, raw otherwise.
func Encode(data []byte) string {
	if len(data) >= minCompress {
		e := encoders.Get().(*zstd.Encoder)
		z := e.EncodeAll(data, make([]byte, 0, len(data)/2))
		encoders.Put(e)
		if len(z) < len(data) {
			return wrap(Zstd, z)
		}
	}
	return wrap(Raw, data)
}

// EncodeWith returns data in the given method, whatever the size.
func EncodeWith(m Method, data []byte) (string, error) {
	switch m {
	case Raw:
		return wrap(Raw, data), nil
	case Gzip:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(data); err != nil {
			return "", err
		}
		if err := w.Close(); err != nil {
			return "", err
		}
		return wrap(Gzip, buf.Bytes()), nil
	case Zstd:
		e := encoders.Get().(*zstd.Encoder)
		z := e.EncodeAll(data, nil)
		encoders.Put(e)
		return wrap(Zstd, z), nil
	}
	return "", fmt.Errorf("compress: unknown method %q", rune(m))
}

func wrap(m Method, b []byte) string {
	out := make([]byte, 3+base64.StdEncoding.EncodedLen(len(b)))
	out[0], out[1], out[2] = '$', byte(m), '$'
	base64.StdEncoding.Encode(out[3:], b)
	return string(out)
}

// Decode parses the wire text form and returns the original bytes. max bounds
// the decoded size in bytes; max <= 0 means no bound and should only be used on
// trusted input.
func Decode(s string, max int64) ([]byte, error) {
	if len(s) < 3 || s[0] != '$' || s[2] != '$' {
		return nil, fmt.Errorf("%w: missing $N$ prefix", ErrFormat)
	}
	m := Method(s[1])
	body := s[3:]
	if m != Raw && m != Gzip && m != Zstd {
		return nil, fmt.Errorf("%w: unknown method %q", ErrFormat, s[1])
	}
	// The base64 text bounds the compressed size; for raw it is the result.
	if m == Raw && max > 0 && int64(base64.StdEncoding.DecodedLen(len(body))) > max+2 {
		return nil, ErrTooLarge
	}
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrFormat, err)
	}
	switch m {
	case Raw:
		if max > 0 && int64(len(raw)) > max {
			return nil, ErrTooLarge
		}
		return raw, nil
	case Gzip:
		r, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrFormat, err)
		}
		return readBounded(r, max, "gzip")
	default:
		return decodeZstd(raw, max)
	}
}

// zstdMemFloor is the decoder memory (window) always allowed, so that frames
// written by streaming encoders with the usual 4-8 MiB windows decode even
// under a small bound; the decoded size itself is still capped at max.
const zstdMemFloor = 8 << 20

func decodeZstd(raw []byte, max int64) ([]byte, error) {
	// A frame declaring a content size over the bound is refused before the
	// decoder allocates a window of that size (a zstd bomb).
	var h zstd.Header
	if err := h.Decode(raw); err == nil && h.HasFCS && max > 0 && h.FrameContentSize > uint64(max) {
		return nil, ErrTooLarge
	}
	// The decoder sizes its window from the frame header (for single-segment
	// frames: the declared content size); cap it so that no frame, the first
	// or a later one, can make it allocate far beyond the bound.
	mem := uint64(64 << 30) // the library default, for max <= 0
	if max > 0 {
		mem = uint64(max)
		if mem < zstdMemFloor {
			mem = zstdMemFloor
		}
	}
	d := decoders.Get().(*zstd.Decoder)
	defer decoders.Put(d)
	if err := d.ResetWithOptions(bytes.NewReader(raw), zstd.WithDecoderMaxMemory(mem)); err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrFormat, err)
	}
	out, err := readBounded(d, max, "zstd")
	// Drop the reference to raw so the pooled decoder does not pin it.
	_ = d.Reset(nil)
	return out, err
}

func readBounded(r io.Reader, max int64, what string) ([]byte, error) {
	var lr io.Reader = r
	if max > 0 {
		lr = io.LimitReader(r, max+1)
	}
	out, err := io.ReadAll(lr)
	if max > 0 && (errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded)) {
		return nil, fmt.Errorf("%w: %s: %v", ErrTooLarge, what, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, what, err)
	}
	if max > 0 && int64(len(out)) > max {
		return nil, ErrTooLarge
	}
	return out, nil
}
