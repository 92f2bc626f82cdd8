package natstest

import (
	"net"
	"testing"
)

// fakeTB records how a test ended.
type fakeTB struct {
	testing.TB
	fatal, skip bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Fatalf(string, ...any) { f.fatal = true }
func (f *fakeTB) Skipf(string, ...any)  { f.skip = true }

// TestMissingServer: a server that does not answer fails the test in CI
// and skips it elsewhere.
func TestMissingServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing answers there now
	for _, tt := range []struct {
		name, ci, require string
		fatal, skip       bool
	}{
		{"developer machine", "", "", false, true},
		{"CI", "true", "", true, false},
		{"REQUIRE_NATS", "", "1", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv("REQUIRE_NATS", tt.require)
			t.Setenv("TEST_NATS_ADDR", addr)
			f := &fakeTB{TB: t}
			if got := Addr(f); got != "" || f.fatal != tt.fatal || f.skip != tt.skip {
				t.Errorf("Addr = %q, fatal %v skip %v; want fatal %v skip %v", got, f.fatal, f.skip, tt.fatal, tt.skip)
			}
		})
	}
}
