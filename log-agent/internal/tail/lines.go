package tail

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"time"

	"github.com/agentfleet/libagent/logship"
)

// Format is how the lines of a file are encoded.
type Format int

const (
	// Plain: text lines ending in "\n" (a trailing "\r" is removed).
	Plain Format = iota
	// DockerJSON: Docker's json-file driver, {"log":…,"stream":…,"time":…}
	// per line; a "log" without a final "\n" is a partial message the
	// daemon split (at 16 KiB) and is joined with the next.
	DockerJSON
	// CRI: the Kubernetes container runtime format,
	// "<RFC3339Nano time> <stream> <P|F> <content>"; P lines are joined
	// with the following ones up to an F line.
	CRI
)

func (f Format) String() string {
	switch f {
	case DockerJSON:
		return "docker-json"
	case CRI:
		return "cri"
	}
	return "plain"
}

// Line is one record out of a file.
type Line struct {
	Offset int64 // where it starts in the file
	End    int64 // after its last byte (and line end) in the file
	Time   int64 // Unix nanoseconds
	Stream byte
	Flags  byte
	Data   []byte
}

// Counters the line processor adds to.
type lineCounts struct {
	lines, bytes, excluded, capped, badFormat uint64
}

// procConfig is what shapes a file's lines (from the project).
type procConfig struct {
	format    Format
	maxLine   int
	exclude   *regexp.Regexp
	mlStart   *regexp.Regexp
	mlMax     int
	mlTimeout time.Duration
}

// rawCap is the longest raw line kept before decoding: a JSON or CRI line
// carries its content escaped or prefixed, so it gets room for that.
func (c *procConfig) rawCap() int {
	if c.format == Plain {
		return c.maxLine
	}
	return 6*c.maxLine + 1024
}

// pending is a record being assembled (a partial message or a multiline
// record).
type pending struct {
	active bool
	off    int64
	time   int64
	stream byte
	flags  byte
	lines  int
	data   []byte
	drop   int64 // content bytes dropped past maxLine
	end    int64 // file offset after its last raw line
	last   time.Time
}

func (p *pending) reset() {
	p.active, p.lines, p.flags, p.drop = false, 0, 0, 0
	p.data = p.data[:0]
}

// lineProc turns a file's bytes into records: splitting, decoding, partial
// joining, capping, multiline and exclude. It keeps records in offset
// order, so a receiver can drop what it already holds by offset.
type lineProc struct {
	cfg *procConfig
	cnt *lineCounts

	carry    []byte // start of an unfinished raw line
	carryOff int64
	skipping bool  // the raw line passed rawCap: dropping until its end
	skipped  int64 // raw bytes dropped of it

	part pending // partial-message join (DockerJSON, CRI)
	ml   pending // multiline record

	line Line // what emit gets: reused, so no line costs an allocation
}

func newLineProc(cfg *procConfig, cnt *lineCounts) *lineProc {
	return &lineProc{cfg: cfg, cnt: cnt}
}

// start returns the offset of the first byte not yet accounted for: the
// start of the oldest unfinished line or record, or next when there is
// none. The checkpoint never passes it.
func (p *lineProc) start(next int64) int64 {
	s := next
	if len(p.carry) > 0 || p.skipping {
		s = min(s, p.carryOff)
	}
	if p.part.active {
		s = min(s, p.part.off)
	}
	if p.ml.active {
		s = min(s, p.ml.off)
	}
	return s
}

// feed processes data read at file offset off. emit gets each line; the
// Line and its Data are only valid during the call (emit copies what it
// keeps).
func (p *lineProc) feed(data []byte, off int64, now time.Time, emit func(*Line)) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			p.keep(data, off)
			return
		}
		line := data[:i]
		lineOff := off
		if len(p.carry) > 0 || p.skipping {
			lineOff = p.carryOff
			if !p.skipping {
				if len(p.carry)+len(line) > p.cfg.rawCap() {
					n := p.cfg.rawCap() - len(p.carry)
					p.skipped += int64(len(line) - n)
					p.carry = append(p.carry, line[:n]...)
				} else {
					p.carry = append(p.carry, line...)
				}
			} else {
				p.skipped += int64(len(line))
			}
			line = p.carry
		} else if len(line) > p.cfg.rawCap() {
			p.skipped = int64(len(line) - p.cfg.rawCap())
			line = line[:p.cfg.rawCap()]
		}
		end := off + int64(i) + 1
		p.raw(line, lineOff, end, p.skipped, now, emit)
		p.carry, p.skipping, p.skipped = p.carry[:0], false, 0
		if cap(p.carry) > 1<<20 {
			p.carry = nil
		}
		data = data[i+1:]
		off = end
	}
}

// keep stores the start of an unfinished raw line.
func (p *lineProc) keep(data []byte, off int64) {
	if len(p.carry) == 0 && !p.skipping {
		p.carryOff = off
	}
	if p.skipping {
		p.skipped += int64(len(data))
		return
	}
	room := p.cfg.rawCap() - len(p.carry)
	if len(data) > room {
		p.carry = append(p.carry, data[:room]...)
		p.skipped += int64(len(data) - room)
		p.skipping = true
		return
	}
	p.carry = append(p.carry, data...)
}

// raw handles one raw line (without "\n") starting at off; dropped raw
// bytes of it were cut by rawCap.
func (p *lineProc) raw(line []byte, off, end, dropped int64, now time.Time, emit func(*Line)) {
	if n := len(line); n > 0 && line[n-1] == '\r' && dropped == 0 {
		line = line[:n-1]
	}
	p.cnt.bytes += uint64(end - off)
	switch p.cfg.format {
	case Plain:
		flags := byte(0)
		if dropped > 0 {
			flags = logship.FlagTruncated
		}
		p.content(line, off, end, now.UnixNano(), logship.StreamFile, flags, dropped, true, now, emit)
	case DockerJSON:
		p.docker(line, off, end, dropped, now, emit)
	case CRI:
		p.cri(line, off, end, dropped, now, emit)
	}
}

type dockerLine struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

func (p *lineProc) docker(line []byte, off, end, dropped int64, now time.Time, emit func(*Line)) {
	var d dockerLine
	if dropped > 0 || json.Unmarshal(line, &d) != nil {
		// Not decodable (cut or damaged): pass the raw bytes on, flagged.
		p.cnt.badFormat++
		p.content(line, off, end, now.UnixNano(), logship.StreamFile, truncFlag(dropped), dropped, true, now, emit)
		return
	}
	ts := now.UnixNano()
	if t, err := time.Parse(time.RFC3339Nano, d.Time); err == nil {
		ts = t.UnixNano()
	}
	stream := logship.StreamStdout
	if d.Stream == "stderr" {
		stream = logship.StreamStderr
	}
	content := []byte(d.Log)
	complete := len(content) > 0 && content[len(content)-1] == '\n'
	if complete {
		content = content[:len(content)-1]
		if n := len(content); n > 0 && content[n-1] == '\r' {
			content = content[:n-1]
		}
	}
	p.content(content, off, end, ts, stream, 0, 0, complete, now, emit)
}

// cri parses "<time> <stream> <P|F> <content>".
func (p *lineProc) cri(line []byte, off, end, dropped int64, now time.Time, emit func(*Line)) {
	bad := func() {
		p.cnt.badFormat++
		p.content(line, off, end, now.UnixNano(), logship.StreamFile, truncFlag(dropped), dropped, true, now, emit)
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		bad()
		return
	}
	t, err := time.Parse(time.RFC3339Nano, string(line[:sp1]))
	if err != nil {
		bad()
		return
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		bad()
		return
	}
	var stream byte
	switch string(rest[:sp2]) {
	case "stdout":
		stream = logship.StreamStdout
	case "stderr":
		stream = logship.StreamStderr
	default:
		bad()
		return
	}
	rest = rest[sp2+1:]
	var tag []byte
	if sp3 := bytes.IndexByte(rest, ' '); sp3 >= 0 {
		tag, rest = rest[:sp3], rest[sp3+1:]
	} else {
		tag, rest = rest, nil // an empty line: "… stdout F"
	}
	// The tag may carry more fields after ':' (future use in the CRI spec).
	if i := bytes.IndexByte(tag, ':'); i >= 0 {
		tag = tag[:i]
	}
	var complete bool
	switch string(tag) {
	case "F":
		complete = true
	case "P":
	default:
		bad()
		return
	}
	flags := byte(0)
	if dropped > 0 {
		flags = logship.FlagTruncated
		complete = true
	}
	p.content(rest, off, end, t.UnixNano(), stream, flags, dropped, complete, now, emit)
}

// content handles decoded content: joins partial messages, caps, then the
// multiline rule and exclude.
func (p *lineProc) content(c []byte, off, end, ts int64, stream, flags byte, dropped int64, complete bool, now time.Time, emit func(*Line)) {
	pp := &p.part
	if pp.active && pp.stream != stream {
		// Another stream interleaved: the partial message ends here, so
		// records stay in offset order.
		p.flushPart(now, emit)
	}
	if !complete || pp.active {
		if !pp.active {
			pp.active, pp.off, pp.time, pp.stream = true, off, ts, stream
		}
		pp.flags |= flags
		pp.drop += dropped
		pp.end = end
		p.appendCapped(pp, c)
		if !complete {
			return
		}
		p.flushPart(now, emit)
		return
	}
	if len(c) > p.cfg.maxLine {
		dropped += int64(len(c) - p.cfg.maxLine)
		c = c[:p.cfg.maxLine]
		flags |= logship.FlagTruncated
	}
	p.record(c, off, end, ts, stream, flags, dropped, now, emit)
}

func (p *lineProc) appendCapped(pp *pending, c []byte) {
	room := p.cfg.maxLine - len(pp.data)
	if len(c) > room {
		pp.drop += int64(len(c) - max(room, 0))
		pp.flags |= logship.FlagTruncated
		c = c[:max(room, 0)]
	}
	pp.data = append(pp.data, c...)
}

func (p *lineProc) flushPart(now time.Time, emit func(*Line)) {
	pp := &p.part
	if !pp.active {
		return
	}
	p.record(pp.data, pp.off, pp.end, pp.time, pp.stream, pp.flags, pp.drop, now, emit)
	pp.reset()
}

// record applies the multiline rule to a complete line.
func (p *lineProc) record(c []byte, off, end, ts int64, stream, flags byte, dropped int64, now time.Time, emit func(*Line)) {
	if p.cfg.mlStart == nil {
		p.out(c, off, end, ts, stream, flags, dropped, emit)
		return
	}
	ml := &p.ml
	starts := p.cfg.mlStart.Match(c)
	if ml.active && (starts || ml.stream != stream || ml.lines >= p.cfg.mlMax) {
		p.flushML(emit)
	}
	if !ml.active {
		if !starts {
			// Before any record start (or after a forced flush): a
			// line of its own.
			p.out(c, off, end, ts, stream, flags, dropped, emit)
			return
		}
		ml.active, ml.off, ml.time, ml.stream, ml.flags, ml.drop = true, off, ts, stream, flags, dropped
		ml.end = end
		ml.lines = 1
		p.appendCapped(ml, c)
		ml.last = now
		return
	}
	ml.lines++
	ml.flags |= flags | logship.FlagMultiline
	ml.drop += dropped
	ml.end = end
	if len(ml.data) < p.cfg.maxLine {
		ml.data = append(ml.data, '\n')
	}
	p.appendCapped(ml, c)
	ml.last = now
}

func (p *lineProc) flushML(emit func(*Line)) {
	ml := &p.ml
	if !ml.active {
		return
	}
	p.out(ml.data, ml.off, ml.end, ml.time, ml.stream, ml.flags, ml.drop, emit)
	ml.reset()
}

// out applies exclude and the truncation marker and emits.
func (p *lineProc) out(c []byte, off, end, ts int64, stream, flags byte, dropped int64, emit func(*Line)) {
	if p.cfg.exclude != nil && p.cfg.exclude.Match(c) {
		p.cnt.excluded++
		return
	}
	if flags&logship.FlagTruncated != 0 {
		p.cnt.capped++
		c = append(c[:len(c):len(c)], marker(dropped)...)
	}
	p.cnt.lines++
	p.line = Line{Offset: off, End: end, Time: ts, Stream: stream, Flags: flags, Data: c}
	emit(&p.line)
}

func truncFlag(dropped int64) byte {
	if dropped > 0 {
		return logship.FlagTruncated
	}
	return 0
}

// marker is appended to a capped line.
func marker(dropped int64) []byte {
	return []byte(" …[truncated: " + strconv.FormatInt(dropped, 10) + " bytes dropped]")
}

// tick completes a multiline record that waited longer than its timeout.
func (p *lineProc) tick(now time.Time, emit func(*Line)) {
	if p.ml.active && now.Sub(p.ml.last) >= p.cfg.mlTimeout {
		p.flushML(emit)
	}
}

// finish emits everything pending: the file ends here (it is gone or its
// source released). An unfinished last line is emitted flagged partial.
func (p *lineProc) finish(now time.Time, emit func(*Line)) {
	if len(p.carry) > 0 || p.skipping {
		line := p.carry
		off, dropped := p.carryOff, p.skipped
		p.carry, p.skipping, p.skipped = p.carry[:0], false, 0
		if p.cfg.format == Plain {
			flags := logship.FlagPartial
			if dropped > 0 {
				flags |= logship.FlagTruncated
			}
			p.cnt.bytes += uint64(len(line)) + uint64(dropped)
			p.content(line, off, off+int64(len(line))+dropped, now.UnixNano(), logship.StreamFile, flags, dropped, true, now, emit)
		} else {
			// A torn JSON/CRI line: pass it on raw, flagged.
			p.cnt.bytes += uint64(len(line)) + uint64(dropped)
			p.cnt.badFormat++
			p.content(line, off, off+int64(len(line))+dropped, now.UnixNano(), logship.StreamFile, logship.FlagPartial, dropped, true, now, emit)
		}
	}
	p.flushPart(now, emit)
	p.flushML(emit)
}
