package tail

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/agentfleet/libagent/logship"
)

type out struct {
	lines []Line
}

func (o *out) emit(l *Line) {
	c := *l
	c.Data = bytes.Clone(l.Data)
	o.lines = append(o.lines, c)
}

func (o *out) texts() []string {
	var s []string
	for _, l := range o.lines {
		s = append(s, string(l.Data))
	}
	return s
}

// feedAll feeds data in pieces of n bytes.
func feedAll(p *lineProc, data string, n int) *out {
	o := &out{}
	now := time.Unix(1700000000, 0)
	for off := 0; off < len(data); off += n {
		end := min(off+n, len(data))
		p.feed([]byte(data[off:end]), int64(off), now, o.emit)
	}
	return o
}

func TestLinesPlain(t *testing.T) {
	for _, n := range []int{1, 3, 7, 1000} {
		cnt := &lineCounts{}
		p := newLineProc(&procConfig{format: Plain, maxLine: 16}, cnt)
		data := "one\r\ntwo\n\nbinary \xff\xfe\x00 ok\n" + strings.Repeat("x", 40) + "\nlast"
		o := feedAll(p, data, n)
		want := []string{"one", "two", "", "binary \xff\xfe\x00 ok", "xxxxxxxxxxxxxxxx …[truncated: 24 bytes dropped]"}
		if got := o.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("piece %d:\n got %q\nwant %q", n, got, want)
		}
		if o.lines[4].Flags != logship.FlagTruncated || cnt.capped != 1 {
			t.Fatalf("cap not flagged: %+v %+v", o.lines[4], cnt)
		}
		// Offsets and ends chain; "last" is pending: the checkpoint stays
		// before it.
		for i, l := range o.lines {
			if i > 0 && l.Offset != o.lines[i-1].End {
				t.Fatalf("line %d starts at %d, previous ended at %d", i, l.Offset, o.lines[i-1].End)
			}
		}
		if s := p.start(int64(len(data))); s != int64(len(data)-4) {
			t.Fatalf("start = %d, want %d", s, len(data)-4)
		}
		p.finish(time.Now(), o.emit)
		if l := o.lines[len(o.lines)-1]; string(l.Data) != "last" || l.Flags != logship.FlagPartial {
			t.Fatalf("finish: %+v", l)
		}
	}
}

func TestLinesExclude(t *testing.T) {
	cnt := &lineCounts{}
	p := newLineProc(&procConfig{format: Plain, maxLine: 1024, exclude: regexp.MustCompile(`DEBUG|healthz`)}, cnt)
	o := feedAll(p, "a\nDEBUG x\nb\nGET /healthz\nc\n", 1000)
	if got := strings.Join(o.texts(), ","); got != "a,b,c" || cnt.excluded != 2 {
		t.Fatalf("got %s, excluded %d", got, cnt.excluded)
	}
}

func TestLinesMultiline(t *testing.T) {
	cnt := &lineCounts{}
	p := newLineProc(&procConfig{format: Plain, maxLine: 1024, mlStart: regexp.MustCompile(`^\d{4}-`), mlMax: 3,
		mlTimeout: 5 * time.Second}, cnt)
	data := "orphan continuation\n" +
		"2026-01-01 ERROR boom\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)\n" +
		"2026-01-01 INFO ok\n" +
		"2026-01-01 ERROR long\n1\n2\n3\n4\n" +
		"2026-01-01 tail\n"
	o := feedAll(p, data, 5)
	want := []string{
		"orphan continuation",
		"2026-01-01 ERROR boom\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)",
		"2026-01-01 INFO ok",
		"2026-01-01 ERROR long\n1\n2", // max_lines 3
		"3", "4",
	}
	if got := o.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("\n got %q\nwant %q", got, want)
	}
	if o.lines[1].Flags&logship.FlagMultiline == 0 {
		t.Fatal("joined record not flagged multiline")
	}
	// The last record waits; the checkpoint stays at its start.
	if s := p.start(int64(len(data))); s != int64(strings.LastIndex(data, "2026-01-01 tail")) {
		t.Fatalf("start = %d", s)
	}
}

// TestMultilineTimeout: a pending record is flushed after the timeout, on
// the fake clock of a synctest bubble.
func TestMultilineTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cnt := &lineCounts{}
		p := newLineProc(&procConfig{format: Plain, maxLine: 1024, mlStart: regexp.MustCompile(`^S`), mlMax: 100,
			mlTimeout: 5 * time.Second}, cnt)
		o := &out{}
		p.feed([]byte("S first\n cont\n"), 0, time.Now(), o.emit)
		time.Sleep(4 * time.Second)
		p.tick(time.Now(), o.emit)
		if len(o.lines) != 0 {
			t.Fatalf("flushed before the timeout: %q", o.texts())
		}
		time.Sleep(time.Second)
		p.tick(time.Now(), o.emit)
		if got := o.texts(); len(got) != 1 || got[0] != "S first\n cont" {
			t.Fatalf("after the timeout: %q", got)
		}
	})
}

func TestLinesDocker(t *testing.T) {
	cnt := &lineCounts{}
	p := newLineProc(&procConfig{format: DockerJSON, maxLine: 1024}, cnt)
	data := `{"log":"out 1\n","stream":"stdout","time":"2026-12-06T04:05:04.986052625Z"}` + "\n" +
		`{"log":"part a ","stream":"stderr","time":"2026-12-06T04:05:05Z"}` + "\n" +
		`{"log":"part b\n","stream":"stderr","time":"2026-12-06T04:05:06Z"}` + "\n" +
		`{"log":"cut ","stream":"stdout","time":"2026-12-06T04:05:07Z"}` + "\n" +
		`{"log":"err\n","stream":"stderr","time":"2026-12-06T04:05:08Z"}` + "\n" +
		"not json\n"
	o := feedAll(p, data, 11)
	want := []string{"out 1", "part a part b", "cut ", "err", "not json"}
	if got := o.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("\n got %q\nwant %q", got, want)
	}
	if o.lines[0].Stream != logship.StreamStdout || o.lines[1].Stream != logship.StreamStderr ||
		o.lines[0].Time != time.Date(2026, 12, 6, 4, 5, 4, 986052625, time.UTC).UnixNano() {
		t.Fatalf("stream/time: %+v %+v", o.lines[0], o.lines[1])
	}
	if cnt.badFormat != 1 || o.lines[4].Flags != 0 {
		t.Fatalf("bad line not counted/flagged: %+v", cnt)
	}
	for i := 1; i < len(o.lines); i++ {
		if o.lines[i].Offset <= o.lines[i-1].Offset {
			t.Fatalf("records out of offset order: %+v", o.lines)
		}
	}
}

func TestLinesCRI(t *testing.T) {
	cnt := &lineCounts{}
	p := newLineProc(&procConfig{format: CRI, maxLine: 12}, cnt)
	data := "2026-12-06T03:50:13.5Z stdout F hello\n" +
		"2026-12-06T03:50:14Z stderr P par\n" +
		"2026-12-06T03:50:14Z stderr F tial\n" +
		"2026-12-06T03:50:15Z stdout F\n" +
		"2026-12-06T03:50:16Z stdout P 0123456789\n" +
		"2026-12-06T03:50:16Z stdout F abcdef\n" +
		"garbage\n" +
		"2026-12-06T03:50:17Z stdio F x\n"
	o := feedAll(p, data, 4)
	want := []string{"hello", "partial", "", "0123456789ab …[truncated: 4 bytes dropped]", "garbage", "2026-12-06T0 …[truncated: 18 bytes dropped]"}
	if got := o.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("\n got %q\nwant %q", got, want)
	}
	if cnt.badFormat != 2 {
		t.Fatalf("bad format = %d", cnt.badFormat)
	}
}

func FuzzLineProc(f *testing.F) {
	f.Add([]byte("a\nb\r\n\xff\n"), uint8(0), uint8(3))
	f.Add([]byte(`{"log":"x","stream":"stdout","time":"2026-12-06T04:05:04Z"}`+"\n"), uint8(1), uint8(5))
	f.Add([]byte("2026-12-06T03:50:14Z stderr P par\n2026-12-06T03:50:14Z stderr F tial\n"), uint8(2), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, format, piece uint8) {
		cnt := &lineCounts{}
		p := newLineProc(&procConfig{format: Format(format % 3), maxLine: 64, mlStart: regexp.MustCompile(`^[A-Z]`),
			mlMax: 4, exclude: regexp.MustCompile(`^#`)}, cnt)
		n := int(piece%16) + 1
		o := &out{}
		now := time.Unix(0, 0)
		for off := 0; off < len(data); off += n {
			end := min(off+n, len(data))
			p.feed(data[off:end], int64(off), now, o.emit)
		}
		if s := p.start(int64(len(data))); s < 0 || s > int64(len(data)) {
			t.Fatalf("start %d outside the data", s)
		}
		p.finish(now, o.emit)
		var prev int64 = -1
		for _, l := range o.lines {
			if l.Offset <= prev || l.End <= l.Offset || l.End > int64(len(data)) {
				t.Fatalf("bad offsets %d..%d after %d (len %d)", l.Offset, l.End, prev, len(data))
			}
			if len(l.Data) > 64+len(" …[truncated: 99999999999 bytes dropped]") {
				t.Fatalf("record of %d bytes past the cap", len(l.Data))
			}
			prev = l.Offset
		}
	})
}

// TestFeedNoAllocPerLine: plain lines cost no allocation each (the Line
// handed to emit is reused; emit copies it).
func TestFeedNoAllocPerLine(t *testing.T) {
	p := newLineProc(&procConfig{format: Plain, maxLine: 1 << 10}, &lineCounts{})
	data := []byte(strings.Repeat(strings.Repeat("x", 199)+"\n", 1000))
	kept := make([]Line, 0, 1000)
	var sum int
	emit := func(l *Line) {
		kept = append(kept, *l)
		sum += len(l.Data)
	}
	now := time.Unix(1700000000, 0)
	allocs := testing.AllocsPerRun(20, func() {
		kept = kept[:0]
		p.feed(data, 0, now, emit)
	})
	if len(kept) != 1000 || sum == 0 {
		t.Fatalf("%d lines emitted", len(kept))
	}
	// Offsets of the copies are their own: emit got a fresh value each time.
	if kept[999].Offset != 999*200 || kept[0].Offset != 0 {
		t.Fatalf("offsets %d, %d", kept[0].Offset, kept[999].Offset)
	}
	if allocs >= 10 {
		t.Fatalf("%.0f allocations for 1000 lines", allocs)
	}
}
