package runner

import (
	"slices"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"
)

// maxRun bounds how many bytes of an unfinished non-ASCII run the decoder
// holds back waiting for its end. Beyond it the run is decided on what has
// arrived, so a long stretch of non-ASCII text without a line end still streams.
const maxRun = 4 << 10

// Decoder turns command output into UTF-8, chunk by chunk.
//
// Output is cut into maximal runs of bytes >= 0x80 (the ASCII bytes between
// them pass through). A run that is valid UTF-8 passes through byte for byte;
// any other run is decoded as GBK (the v1 behaviour, for Chinese Windows and
// legacy locales), including a GBK trail byte in 0x40–0x7E that follows the
// run. A run that reaches the end of a chunk is carried over to the next one,
// so a UTF-8 or GBK character split across reads is decoded whole, and the
// decision for a run does not depend on where reads happened to split it.
//
// The zero value is ready to use. A Decoder is not safe for concurrent use.
type Decoder struct {
	carry []byte
	gbk   transform.Transformer
}

// Decode appends the UTF-8 form of p to dst and returns it. Bytes that may
// belong to a character continued by the next call are kept back; final says
// there is no next call, and flushes them.
func (d *Decoder) Decode(dst, p []byte, final bool) []byte {
	buf := p
	if len(d.carry) > 0 {
		buf = append(d.carry, p...)
		d.carry = d.carry[:0]
	}
	i := 0
	for i < len(buf) {
		if buf[i] < utf8.RuneSelf {
			j := i + 1
			for j < len(buf) && buf[j] < utf8.RuneSelf {
				j++
			}
			dst = append(dst, buf[i:j]...)
			i = j
			continue
		}
		j := i + 1
		for j < len(buf) && buf[j] >= utf8.RuneSelf {
			j++
		}
		run := buf[i:j]
		atEnd := j == len(buf)
		if atEnd && !final && len(run) < maxRun {
			d.keep(run)
			return dst
		}
		if utf8.Valid(run) {
			dst = append(dst, run...)
			i = j
			continue
		}
		if atEnd && !final {
			// An overlong run: emit what is decided, keep a possibly split tail.
			if n := validPrefix(run); n > 0 {
				dst = append(dst, run[:n]...)
				d.keep(run[n:])
				return dst
			}
			if gbkOddLead(run) {
				dst = d.appendGBK(dst, run[:len(run)-1])
				d.keep(run[len(run)-1:])
				return dst
			}
			return d.appendGBK(dst, run)
		}
		end := j
		if gbkOddLead(run) && j < len(buf) && buf[j] >= 0x40 && buf[j] <= 0x7e {
			end = j + 1
		}
		dst = d.appendGBK(dst, buf[i:end])
		i = end
	}
	return dst
}

func (d *Decoder) keep(b []byte) {
	// b may alias d.carry's old backing array; copy through a fresh slice.
	c := make([]byte, len(b), max(len(b), 64))
	copy(c, b)
	d.carry = c
}

// validPrefix returns the length of the longest prefix of b that is valid
// UTF-8 and ends on a character boundary, when the rest of b is an unfinished
// (but so far valid) UTF-8 sequence; otherwise 0.
func validPrefix(b []byte) int {
	for k := 1; k < utf8.UTFMax && k <= len(b); k++ {
		n := len(b) - k
		if utf8.Valid(b[:n]) && !utf8.FullRune(b[n:]) && utf8.RuneStart(b[n]) {
			return n
		}
	}
	return 0
}

// gbkOddLead reports whether the last byte of run (all bytes >= 0x80) is a
// GBK lead byte without its trail byte inside run.
func gbkOddLead(run []byte) bool {
	odd := false
	for i := 0; i < len(run); i++ {
		if run[i] == 0x80 || run[i] == 0xff {
			continue // single-byte in GBK (0x80 is €, 0xff invalid)
		}
		if i+1 == len(run) {
			odd = true
			break
		}
		i++
	}
	return odd
}

// appendGBK appends the UTF-8 form of the GBK bytes b. Undecodable bytes
// become U+FFFD (the x/text decoder's replacement).
func (d *Decoder) appendGBK(dst, b []byte) []byte {
	if d.gbk == nil {
		d.gbk = simplifiedchinese.GBK.NewDecoder()
	}
	d.gbk.Reset()
	for len(b) > 0 {
		// Each GBK byte yields at most 3 UTF-8 bytes (U+FFFD, €, a 2-byte
		// character as 3): room for all of it means no short destination.
		dst = slices.Grow(dst, 3*len(b)+utf8.UTFMax)
		nDst, nSrc, err := d.gbk.Transform(dst[len(dst):cap(dst)], b, true)
		dst = dst[:len(dst)+nDst]
		b = b[nSrc:]
		if err != nil && err != transform.ErrShortDst {
			for range b { // not expected: the decoder replaces what it cannot decode
				dst = utf8.AppendRune(dst, utf8.RuneError)
			}
			break
		}
	}
	return dst
}
