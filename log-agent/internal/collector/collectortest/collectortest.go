// Package collectortest runs a real collector in tests of the discoveries
// (docker, k8s) and keeps what it ships in memory.
package collectortest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent/logship"

	"github.com/agentfleet/log-agent/internal/batch"
	"github.com/agentfleet/log-agent/internal/collector"
	"github.com/agentfleet/log-agent/internal/project"
	"github.com/agentfleet/log-agent/internal/tail"
)

// Rec is a shipped record and the name of its source.
type Rec struct {
	Source string
	logship.Record
}

// Sink acknowledges every batch and keeps its records in arrival order.
// It is safe for concurrent use.
type Sink struct {
	mu   sync.Mutex
	recs []Rec
}

// Ship implements the collector's sink.
func (s *Sink) Ship(_ context.Context, bs []*batch.Batch) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range bs {
		rs, err := b.Records(0)
		if err != nil {
			return 0, err
		}
		for _, r := range rs {
			r.Data = slices.Clone(r.Data)
			s.recs = append(s.recs, Rec{b.Sources[r.Source].Name, r})
		}
	}
	return len(bs), nil
}

// Of returns the records of the source named source.
func (s *Sink) Of(source string) []Rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Rec
	for _, r := range s.recs {
		if r.Source == source {
			out = append(out, r)
		}
	}
	return out
}

// Texts returns the data of the records of the source named source.
func (s *Sink) Texts(source string) []string {
	var out []string
	for _, r := range s.Of(source) {
		out = append(out, string(r.Data))
	}
	return out
}

// Run starts a collector of p with discovery d, tailing below root with
// short poll and scan intervals, and stops it when the test ends (failing
// the test if Run returned an error).
func Run(t *testing.T, p *project.Project, root string, d collector.Discovery) (*collector.Collector, *Sink) {
	t.Helper()
	s := &Sink{}
	c, err := collector.New(collector.Options{Project: p, Dir: t.TempDir(), Sink: s, Discovery: d,
		Tail: tail.Options{Root: root, Poll: 2 * time.Millisecond, Scan: 20 * time.Millisecond, RotateWait: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return c, s
}
