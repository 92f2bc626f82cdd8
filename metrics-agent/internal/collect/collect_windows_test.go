package collect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// warned returns the fields warned about, and checks the ones Windows has
// no source for are ErrUnsupported.
func warned(t *testing.T, ws []Warning, unsupported ...string) []string {
	t.Helper()
	var fields []string
	for _, w := range ws {
		fields = append(fields, w.Field)
		if slices.Contains(unsupported, w.Field) && !errors.Is(w, ErrUnsupported) {
			t.Errorf("%v: want ErrUnsupported", w)
		}
	}
	for _, f := range unsupported {
		if !slices.Contains(fields, f) {
			t.Errorf("no warning for %s, which Windows does not have", f)
		}
	}
	return fields
}

// The static facts gopsutil and the standard library give on Windows.
// (Fields wine cannot give — CPU model from SMBIOS, swap, install time —
// are listed in docs/windows.md and not asserted.)
func TestStaticWindows(t *testing.T) {
	s, ws := New(Options{}).Static(context.Background())
	t.Logf("warnings: %v", ws)
	warned(t, ws, "static.nameservers", "static.gateway", "static.user")
	if s.OS.Name != "windows" || s.Host.Name == "" || s.Kernel.Arch == "" || s.Memory.Physical == 0 || s.Time.IsZero() {
		t.Errorf("static %+v", s)
	}
	var parts []string
	for _, p := range s.Partitions {
		parts = append(parts, p.Mount)
	}
	if !slices.Contains(parts, "C:") {
		t.Errorf("partitions %v, want C: among them", parts)
	}
	if len(s.Interface) == 0 {
		t.Error("no network interface")
	}
}

// Usage and the process list; Windows has no load average.
func TestDynamicWindows(t *testing.T) {
	c := New(Options{})
	rep, ws := c.Dynamic(context.Background(), Request{Usage: true, Process: true})
	t.Logf("warnings: %v", ws)
	warned(t, ws, "usage.cpu.load")
	if rep.Usage == nil || rep.Usage.Memory.Used == 0 || rep.Usage.Memory.Usage <= 0 || rep.Usage.Memory.Usage > 100 {
		t.Fatalf("usage %+v", rep.Usage)
	}
	i := slices.IndexFunc(rep.Process, func(p protocol.HMProcess) bool { return int(p.ID) == os.Getpid() })
	if i < 0 {
		t.Fatalf("own pid %d not among %d processes", os.Getpid(), len(rep.Process))
	}
	if p := rep.Process[i]; len(p.Cmd) == 0 || !strings.EqualFold(filepath.Ext(p.Cmd[0]), ".exe") || p.RSS == 0 || p.User == "" {
		t.Errorf("own process %+v", p)
	}
}

func TestInstallPaths(t *testing.T) {
	t.Setenv("SystemRoot", `D:\Win`)
	want := []string{`D:\Win\Panther\setupact.log`, `D:\Win\System32\config\SYSTEM`}
	if got := installPaths(Roots{}); !slices.Equal(got, want) {
		t.Errorf("installPaths = %v, want %v", got, want)
	}
	f := filepath.Join(t.TempDir(), "marker")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := os.Chtimes(f, mt, mt); err != nil {
		t.Fatal(err)
	}
	if got, err := fileTime(f); err != nil || !got.Equal(mt) {
		t.Errorf("fileTime = %v, %v; want %v", got, err, mt)
	}
	if _, err := fileTime(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fileTime of a missing file: %v", err)
	}
}
