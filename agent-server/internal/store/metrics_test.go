package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

func testMetrics(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	m := func(cat string, at time.Time, data string) Metric {
		return Metric{AgentID: "a", Category: cat, Time: at, Data: json.RawMessage(data)}
	}
	must(t, s.PutMetrics(ctx, []Metric{
		m(CategoryUsage, t0, `{"cpu":1}`),
		m(CategoryStatic, t0, `{"host":"h"}`),
		m(CategoryUsage, t0.Add(time.Second), `{"cpu":2}`), // same batch, newer
	}))
	got, err := s.GetMetric(ctx, "a", CategoryUsage)
	must(t, err)
	if string(got.Data) != `{"cpu":2}` || !got.Time.Equal(utc(t0.Add(time.Second))) {
		t.Fatalf("usage %+v", got)
	}
	must(t, s.PutMetrics(ctx, []Metric{m(CategoryUsage, t0, `{"cpu":0}`)})) // older: ignored
	if got, _ := s.GetMetric(ctx, "a", CategoryUsage); string(got.Data) != `{"cpu":2}` {
		t.Fatalf("older report replaced newer: %s", got.Data)
	}
	must(t, s.PutMetrics(ctx, []Metric{m(CategoryUsage, t0.Add(time.Minute), `{"cpu":3}`), m(CategoryTemps, t0, `[]`)}))
	all, err := s.GetMetrics(ctx, "a")
	must(t, err)
	var cats []string
	for _, x := range all {
		cats = append(cats, x.Category)
	}
	if !slices.Equal(cats, []string{"static", "temps", "usage"}) || string(all[2].Data) != `{"cpu":3}` {
		t.Fatalf("metrics %v %s", cats, all[2].Data)
	}
	_, err = s.GetMetric(ctx, "a", CategoryConns)
	wantErr(t, err, ErrNotFound, "conns")
	for _, tc := range []struct {
		m    Metric
		want string
	}{
		{m("cpu", t0, `{}`), `metric category "cpu"`},
		{Metric{Category: CategoryUsage, Time: t0}, "without agent id"},
		{m(CategoryUsage, time.Time{}, `{}`), "without time"},
		{m(CategoryUsage, t0, `{"a":`), "metric data is not valid JSON"},
	} {
		wantErr(t, s.PutMetrics(ctx, []Metric{tc.m}), ErrInvalid, tc.want)
	}
	if ms, err := s.GetMetrics(ctx, "nobody"); err != nil || len(ms) != 0 {
		t.Fatalf("nobody: %v %v", ms, err)
	}
}

func testUsage(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	var ms []Metric
	for i := range 10 {
		ms = append(ms, Metric{AgentID: "a", Time: t0.Add(time.Duration(i) * time.Minute), Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
		ms = append(ms, Metric{AgentID: "b", Time: t0.Add(time.Duration(i) * time.Minute), Data: json.RawMessage(`{}`)})
	}
	must(t, s.AddUsage(ctx, ms))
	must(t, s.AddUsage(ctx, nil))
	h, err := s.UsageHistory(ctx, "a", t0.Add(7*time.Minute))
	must(t, err)
	if len(h) != 3 || string(h[0].Data) != `{"i":7}` || string(h[2].Data) != `{"i":9}` || h[0].Category != CategoryUsage {
		t.Fatalf("history %+v", h)
	}
	n, err := s.PruneUsage(ctx, t0.Add(5*time.Minute))
	must(t, err)
	if n != 10 {
		t.Fatalf("pruned %d, want 10", n)
	}
	h, _ = s.UsageHistory(ctx, "a", time.Time{})
	if len(h) != 5 || string(h[0].Data) != `{"i":5}` {
		t.Fatalf("after prune %+v", h)
	}
	wantErr(t, s.AddUsage(ctx, []Metric{{AgentID: "a"}}), ErrInvalid, "without time")
}
