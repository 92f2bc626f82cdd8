package logging

import (
	"path"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/agentfleet/libagent/logship"
)

// TailFilter selects the lines of a live tail.
type TailFilter struct {
	Project string
	Hosts   []string
	Source  string // path.Match pattern of the source name, or its id
	Grep    *regexp.Regexp
}

func (f *TailFilter) match(host string, src Source, data []byte) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, host) {
		return false
	}
	if f.Source != "" && f.Source != src.ID {
		if ok, _ := path.Match(f.Source, src.Name); !ok {
			return false
		}
	}
	return f.Grep == nil || f.Grep.Match(data)
}

// Subscription is one live tail. Lines arrives with the lines stored
// after Subscribe; a subscriber that does not keep up loses lines (they
// stay stored; Dropped counts them, and the metric too). Close ends it.
type Subscription struct {
	Lines <-chan Line
	lines chan Line
	f     TailFilter
	h     *tailHub

	mu      sync.Mutex
	dropped int64
	closed  bool
}

// Dropped returns the lines lost so far and resets the count.
func (s *Subscription) Dropped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.dropped
	s.dropped = 0
	return n
}

// Close ends the subscription; Lines is closed.
func (s *Subscription) Close() { s.h.remove(s) }

type tailHub struct {
	m    *metrics
	mu   sync.RWMutex
	subs map[string][]*Subscription // by project
}

func newTailHub(m *metrics) *tailHub { return &tailHub{m: m, subs: map[string][]*Subscription{}} }

func (h *tailHub) subscribe(f TailFilter, buf int) *Subscription {
	ch := make(chan Line, buf)
	s := &Subscription{Lines: ch, lines: ch, f: f, h: h}
	h.mu.Lock()
	h.subs[f.Project] = append(h.subs[f.Project], s)
	h.mu.Unlock()
	return s
}

func (h *tailHub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.subs[s.f.Project]
	if i := slices.Index(list, s); i >= 0 {
		h.subs[s.f.Project] = slices.Delete(list, i, i+1)
	}
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.lines)
	}
	s.mu.Unlock()
}

func (h *tailHub) closeAll() {
	h.mu.RLock()
	var all []*Subscription
	for _, l := range h.subs {
		all = append(all, l...)
	}
	h.mu.RUnlock()
	for _, s := range all {
		h.remove(s)
	}
}

// publish hands stored records to the project's subscribers without ever
// blocking the ingest.
func (h *tailHub) publish(project, host string, srcs []Source, recs []logship.Record) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.subs[project] {
		var lost int64
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			continue
		}
		for _, r := range recs {
			src := srcs[r.Source]
			if !s.f.match(host, src, r.Data) {
				continue
			}
			l := Line{Host: host, Source: src.Name, SourceID: src.ID, Offset: r.Offset, Time: time.Unix(0, r.Time).UTC(),
				Stream: r.Stream, Flags: r.Flags, Data: slices.Clone(r.Data)}
			select {
			case s.lines <- l:
			default:
				lost++
			}
		}
		s.dropped += lost
		s.mu.Unlock()
		if lost > 0 {
			h.m.tailDropped.WithLabelValues(project).Add(float64(lost))
		}
	}
}
