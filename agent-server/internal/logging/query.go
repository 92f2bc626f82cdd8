package logging

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// Query selects stored lines of one project.
type Query struct {
	Project string
	Hosts   []string // none: every host
	// Since and Until bound the records' time (Until excluded); zero: open.
	Since, Until time.Time
	// Source matches a source's name (path.Match pattern) or its id.
	Source string
	Grep   *regexp.Regexp
	Limit  int
	After  *Cursor // continue after a previous page
}

// Cursor is where a page ended: the next record to look at.
type Cursor struct {
	Host string `json:"h"`
	Seg  uint64 `json:"s"`
	Off  int64  `json:"o"` // of the frame in the segment
	Idx  int    `json:"i"` // record within the frame
}

// Line is one stored line.
type Line struct {
	Host     string
	Source   string
	SourceID string
	Offset   int64
	Time     time.Time
	Stream   byte
	Flags    byte
	Data     []byte
}

// MaxCursor bounds an encoded cursor.
const MaxCursor = 1024

// Encode returns the cursor as an opaque token.
func (c *Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrBadCursor wraps ParseCursor's errors.
var ErrBadCursor = errors.New("bad cursor")

// ParseCursor decodes a token of Encode (outside input).
func ParseCursor(s string) (*Cursor, error) {
	if len(s) > MaxCursor {
		return nil, fmt.Errorf("%w: longer than %d", ErrBadCursor, MaxCursor)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCursor, err)
	}
	if c.Host == "" || c.Seg == 0 || c.Off < 4 || c.Idx < 0 {
		return nil, fmt.Errorf("%w: out of range", ErrBadCursor)
	}
	return &c, nil
}

func (q *Query) matchSource(s frameSource) bool {
	if q.Source == "" || q.Source == s.id {
		return true
	}
	ok, _ := path.Match(q.Source, s.name)
	return ok
}

// Query returns up to q.Limit lines in storage order (hosts by name, each
// host's segments in order: per source, offset order) and the cursor of
// the next page, nil at the end.
func (s *Store) Query(ctx context.Context, q Query) ([]Line, *Cursor, error) {
	hosts, err := s.Hosts(q.Project)
	if err != nil {
		return nil, nil, err
	}
	if len(q.Hosts) > 0 {
		hosts = slices.DeleteFunc(hosts, func(h string) bool { return !slices.Contains(q.Hosts, h) })
	}
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	var out []Line
	since, until := int64(0), int64(0)
	if !q.Since.IsZero() {
		since = q.Since.UnixNano()
	}
	if !q.Until.IsZero() {
		until = q.Until.UnixNano()
	}
	for _, host := range hosts {
		if q.After != nil && host < q.After.Host {
			continue
		}
		dir := filepath.Join(s.o.Dir, q.Project, hostDir(host))
		seqs, err := segments(dir)
		if err != nil {
			continue // removed meanwhile
		}
		for _, seq := range seqs {
			start, skip := int64(4), 0
			if q.After != nil && host == q.After.Host {
				if seq < q.After.Seg {
					continue
				}
				if seq == q.After.Seg {
					start, skip = q.After.Off, q.After.Idx
				}
			}
			next, err := s.scanSegment(ctx, &q, host, filepath.Join(dir, segName(seq)), seq, start, skip, since, until, &out)
			if err != nil {
				return nil, nil, err
			}
			if next != nil {
				return out, next, nil
			}
		}
	}
	return out, nil, nil
}

// scanSegment adds the matching lines of one segment from frame offset
// start (skipping skip records of that frame) to out; it returns the cursor
// when out is full.
func (s *Store) scanSegment(ctx context.Context, q *Query, host, p string, seq uint64, start int64, skip int, since, until int64, out *[]Line) (*Cursor, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // deleted by retention
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return nil, err
	}
	fr := newFrameReader(f, start)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pl, at, err := fr.next()
		if err != nil {
			return nil, nil
		}
		if len(pl) == 0 || pl[0] != frameRecs {
			skip = 0
			continue
		}
		head, err := decodeRecordFrame(pl, false)
		if err != nil {
			return nil, nil
		}
		if (since != 0 && head.maxT < since) || (until != 0 && head.minT >= until) || !slices.ContainsFunc(head.sources, q.matchSource) {
			skip = 0
			continue
		}
		fm, err := decodeRecordFrame(pl, true)
		if err != nil {
			return nil, nil
		}
		for i := skip; i < len(fm.recs); i++ {
			r := fm.recs[i]
			src := fm.sources[r.Source]
			if (since != 0 && r.Time < since) || (until != 0 && r.Time >= until) || !q.matchSource(src) {
				continue
			}
			if q.Grep != nil && !q.Grep.Match(r.Data) {
				continue
			}
			if len(*out) == q.Limit {
				return &Cursor{Host: host, Seg: seq, Off: at, Idx: i}, nil
			}
			*out = append(*out, Line{Host: host, Source: src.name, SourceID: src.id, Offset: r.Offset,
				Time: time.Unix(0, r.Time).UTC(), Stream: r.Stream, Flags: r.Flags, Data: slices.Clone(r.Data)})
		}
		skip = 0
	}
}
