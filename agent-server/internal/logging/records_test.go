package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/agentfleet/libagent/logship"
	"github.com/agentfleet/libagent/protocol"
)

func TestDecodeBatch(t *testing.T) {
	var block []byte
	want := []logship.Record{{Source: 0, Offset: 0, Time: 5, Data: []byte("a\xffb")}, {Source: 1, Offset: 7, Time: -1, Stream: 2, Flags: 1, Data: nil}}
	for i := range want {
		block = logship.AppendRecord(block, &want[i])
	}
	good := protocol.LogBatch{Project: "web", Seq: 1, Lines: 2, Sources: []protocol.LogSource{{ID: "a1", Name: "/x", End: 7}, {ID: "b2", Name: "/y", First: 7, End: 9}},
		Data: logship.Compress(nil, block)}
	got, err := DecodeBatch(&good)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0].Data, want[0].Data) || got[1].Stream != 2 || got[1].Time != -1 {
		t.Fatalf("%+v %v", got, err)
	}
	// Lines is only a capacity hint: a wrong count changes nothing.
	for _, lines := range []int{-5, 0, 1, 1 << 40} {
		b := good
		b.Lines = lines
		got, err := DecodeBatch(&b)
		if err != nil || len(got) != 2 || cap(got) > len(block)/6+2 {
			t.Fatalf("lines %d: %d records (cap %d), %v", lines, len(got), cap(got), err)
		}
	}
	bad := []struct {
		name string
		mod  func(b *protocol.LogBatch)
		msg  string
	}{
		{"project", func(b *protocol.LogBatch) { b.Project = "../x" }, "project"},
		{"source id", func(b *protocol.LogBatch) { b.Sources[0].ID = "a/b" }, "sources[0].id"},
		{"range", func(b *protocol.LogBatch) { b.Sources[1].End = 1 }, "sources[1] range"},
		{"no sources", func(b *protocol.LogBatch) { b.Sources = nil }, "lines without sources"},
		{"not zstd", func(b *protocol.LogBatch) { b.Data = []byte("nope") }, "corrupt"},
		{"index", func(b *protocol.LogBatch) { b.Sources = b.Sources[:1] }, "source index"},
		{"name", func(b *protocol.LogBatch) { b.Sources[0].Name = strings.Repeat("n", 5000) }, "name longer"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			b := good
			b.Sources = append([]protocol.LogSource(nil), good.Sources...)
			c.mod(&b)
			_, err := DecodeBatch(&b)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want ErrCorrupt naming %q", err, c.msg)
			}
		})
	}
}

func FuzzDecodeBatch(f *testing.F) {
	var block []byte
	block = logship.AppendRecord(block, &logship.Record{Offset: 3, Time: 9, Data: []byte("hello")})
	f.Add("web", "a1", logship.Compress(nil, block))
	f.Add("web", "a1", []byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, project, id string, data []byte) {
		b := protocol.LogBatch{Project: project, Lines: 1, Sources: []protocol.LogSource{{ID: id, Name: "x", End: 1}}, Data: data}
		_, _ = DecodeBatch(&b) // must not panic or allocate without bound
	})
}

func TestParams(t *testing.T) {
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := Params(get(map[string]string{"pid": "web", "type": "logtail", "ids": "a, b,", "dir": "/var/log/*.log"}))
	if err != nil || c.Batch != logship.DefaultBatch || c.Buffer != logship.DefaultBuffer || c.Interval != logship.DefaultInterval || len(c.IDs) != 2 {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := Params(get(map[string]string{"pid": "k", "type": "k8s", "ns": "shop", "name": "web,api", "api": "https://10.0.0.1:6443"})); err != nil {
		t.Fatalf("k8s: %v", err)
	}
	bad := []struct {
		in    map[string]string
		param string
	}{
		{map[string]string{"type": "logtail"}, "pid"},
		{map[string]string{"pid": "../x", "type": "logtail"}, "pid"},
		{map[string]string{"pid": "p"}, "type"},
		{map[string]string{"pid": "p", "type": "syslog"}, "type"},
		{map[string]string{"pid": "p", "type": "logtail", "dir": "/x"}, "ids"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a"}, "dir"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "rel/*.log"}, "dir"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "/x[", "batch": "1"}, "dir"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "/x", "batch": "x"}, "batch"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "/x", "batch": "100001"}, "batch"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "/x", "buffer": "10"}, "buffer"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "/x", "interval": "0x"}, "interval"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "/x", "interval": "3601"}, "interval"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "/x", "exclude": "("}, "exclude"},
		{map[string]string{"pid": "p", "type": "logtail", "ids": "a", "dir": "/x", "read_from": "middle"}, "read_from"},
		{map[string]string{"pid": "p", "type": "docker", "ids": "a"}, "ct_name"},
		{map[string]string{"pid": "p", "type": "docker", "ids": "a", "ct_name": "x", "dir": "y"}, "dir"},
		{map[string]string{"pid": "p", "type": "k8s", "name": "a", "api": "https://x"}, "ns"},
		{map[string]string{"pid": "p", "type": "k8s", "ns": "a", "api": "https://x"}, "name"},
		{map[string]string{"pid": "p", "type": "k8s", "ns": "a", "name": "b"}, "api"},
		{map[string]string{"pid": "p", "type": "k8s", "ns": "a", "name": "b", "api": "ftp://x"}, "api"},
		{map[string]string{"pid": "p", "type": "k8s", "ns": "a", "name": "b", "api": "https://x", "token": strings.Repeat("t", 20000)}, "token"},
	}
	for _, c := range bad {
		_, err := Params(get(c.in))
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != c.param {
			t.Errorf("%v: err %v, want one naming %s", c.in, err, c.param)
		}
	}
}

func FuzzParams(f *testing.F) {
	f.Add("web", "logtail", "a,b", "/var/log/*.log", "1000", "DEBUG")
	f.Add("k", "k8s", "", "", "x", "(")
	f.Fuzz(func(t *testing.T, pid, typ, ids, dir, batch, exclude string) {
		m := map[string]string{"pid": pid, "type": typ, "ids": ids, "dir": dir, "batch": batch, "exclude": exclude,
			"ns": "n", "name": "a", "api": "https://x", "ct_name": "c"}
		c, err := Params(func(k string) string { return m[k] })
		if err != nil {
			return
		}
		if err := c.Check(); err != nil {
			t.Fatalf("accepted config fails its check again: %v", err)
		}
		_ = c.AgentSpec()
	})
}
